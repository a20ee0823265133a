import type { IncomingMessage } from 'node:http';
import { parseUuid } from '@berth/contracts';

const PREFIX = /^\/sandboxes\/([0-9a-fA-F-]{32,36})(\/[^?]*)?(\?.*)?$/;
const SANDBOX_OF_REQUEST = Symbol('berth.sandboxId');

/**
 * `/sandboxes/{id}/<path>` serves the whole agent-server surface of one sandbox: the prefix is taken
 * off before routing (so every route and socket exists under it) and remembered on the request, and
 * whatever the request touches is then limited to that sandbox.
 */
export function stripSandboxPrefix(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const m = PREFIX.exec(url);
  const id = m ? parseUuid(m[1]) : null;
  if (!m || !id) return url;
  (req as IncomingMessage & { [SANDBOX_OF_REQUEST]?: string })[SANDBOX_OF_REQUEST] = id;
  return `${m[2] ?? '/'}${m[3] ?? ''}`;
}

/** The sandbox of a request that came in under `/sandboxes/{id}`, if any. */
export function sandboxOfRequest(req: IncomingMessage): string | undefined {
  return (req as IncomingMessage & { [SANDBOX_OF_REQUEST]?: string })[SANDBOX_OF_REQUEST];
}
