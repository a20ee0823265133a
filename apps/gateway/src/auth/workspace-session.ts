import type { IncomingHttpHeaders } from 'node:http';

export const WORKSPACE_SESSION_COOKIE = 'oh_workspace_session_key';

/** The only paths the cookie authenticates: the conversation's static workspace files. */
const COOKIE_PATH = /^\/api\/conversations\/[^/]+\/workspace(\/|$)/;

/** The session key a workspace-file request carries in its cookie, or undefined. */
export function workspaceSessionKey(path: string, headers: IncomingHttpHeaders): string | undefined {
  if (!COOKIE_PATH.test(path) || typeof headers.cookie !== 'string') return undefined;
  for (const part of headers.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === WORKSPACE_SESSION_COOKIE) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim()) || undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
