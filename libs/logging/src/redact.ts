/** Headers that carry credentials: never written to a log (pino `redact`). */
export const CREDENTIAL_HEADERS = ['x-session-api-key', 'authorization', 'proxy-authorization', 'cookie', 'set-cookie'] as const;

export const REDACTED = '[Redacted]';

/** pino `redact` paths: the credential headers wherever a request, a response or a bare header object is logged. */
export const REDACT_PATHS = CREDENTIAL_HEADERS.flatMap((name) => [`headers["${name}"]`, `req.headers["${name}"]`, `res.headers["${name}"]`]);

/** Key names (lower case, without `_`/`-`) whose values are credentials, however deep in a logged object. */
const SECRET_KEY_ENDINGS = ['apikey', 'secret', 'secrets', 'secretkey', 'password', 'passwd', 'token', 'authorization', 'cookie'];

export function isSecretKey(key: string): boolean {
  const plain = key.toLowerCase().replace(/[-_]/g, '');
  return SECRET_KEY_ENDINGS.some((ending) => plain.endsWith(ending));
}

const MAX_DEPTH = 8;

/**
 * A copy of a logged object with the value of every secret-looking key (api_key, secret, password,
 * token…) censored, at any depth (pino's redact paths name fixed places). Only plain objects and
 * arrays are walked: Errors and other instances go to their serializers as they are.
 */
export function censorSecrets<T>(value: T, depth = 0): T {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => censorSecrets(item, depth + 1)) as T;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = isSecretKey(key) ? REDACTED : censorSecrets(item, depth + 1);
  return out as T;
}

/** A URL as it may be logged: a `session_api_key` query parameter (how browsers authenticate sockets) censored. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]session_api_key=)[^&#]*/gi, `$1${REDACTED}`);
}
