import type { BerthConfig } from '@berth/config';

/** Paths whose CORS policy admits any http(s) origin with credentials (contract §1.4). */
const OPEN_CORS_PATH = /^\/api\/(auth\/workspace-session|conversations\/[^/]+\/workspace)(\/|$)/;
const ALWAYS_ALLOWED_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Decides whether a browser origin may call the API: localhost origins always, configured origins
 * and the origin regex (a full match), and any http(s) origin on the workspace paths.
 */
export function corsOriginAllowed(config: BerthConfig, origin: string, path: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (OPEN_CORS_PATH.test(path)) return true;
  if (ALWAYS_ALLOWED_HOSTS.has(url.hostname)) return true;
  if (config.dockerHostAddr && url.hostname === config.dockerHostAddr) return true;
  if (config.corsOrigins.includes(origin)) return true;
  if (config.corsOriginRegex && new RegExp(`^(?:${config.corsOriginRegex})$`).test(origin)) return true;
  return false;
}
