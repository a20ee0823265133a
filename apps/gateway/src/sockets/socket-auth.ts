import type { WebSocket } from 'ws';
import type { ApiKeyService } from '../auth/api-key.service';
import type { Principal } from '../common/tenant.decorator';
import type { SocketRequest } from './ws-router';

export const AUTH_FAILED = 4001;

/** Is this frame exactly an auth object ({type:"auth", session_api_key})? Such later frames are ignored. */
export function isAuthFrame(frame: unknown): frame is { type: 'auth'; session_api_key?: string } {
  if (!frame || typeof frame !== 'object' || Array.isArray(frame)) return false;
  const keys = Object.keys(frame);
  return (frame as { type?: unknown }).type === 'auth' && keys.every((k) => k === 'type' || k === 'session_api_key');
}

/**
 * Socket auth as OpenHands does it (contract §1.3): the `session_api_key` query parameter, else the
 * X-Session-API-Key header; with neither (and keys configured) the first frame must be
 * {"type":"auth","session_api_key":…} within the timeout. Closes with 4001 and resolves null on failure.
 */
export async function authenticateSocket(ws: WebSocket, req: SocketRequest, keys: ApiKeyService, timeoutMs: number): Promise<Principal | null> {
  const fail = () => {
    ws.close(AUTH_FAILED, 'Authentication failed');
    return null;
  };
  const header = req.headers['x-session-api-key'];
  const offered = req.query.get('session_api_key') ?? (Array.isArray(header) ? header[0] : header);
  if (offered !== undefined) return (await keys.resolve(offered)) ?? fail();
  if (keys.isOpen) return keys.resolve(undefined);

  const frameKey = await new Promise<string | null>((resolve) => {
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (key: string | null) => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      resolve(key);
    };
    const onMessage = (data: Buffer, isBinary: boolean) => {
      try {
        const frame = JSON.parse(isBinary ? '' : data.toString('utf8'));
        done(isAuthFrame(frame) && typeof frame.session_api_key === 'string' ? frame.session_api_key : null);
      } catch {
        done(null);
      }
    };
    const onClose = () => done(null);
    ws.on('message', onMessage);
    ws.on('close', onClose);
  });
  if (frameKey === null) return fail();
  return (await keys.resolve(frameKey)) ?? fail();
}
