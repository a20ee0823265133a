/** Headers that carry credentials: never written to a log (pino `redact`). */
export const CREDENTIAL_HEADERS = ['x-session-api-key', 'authorization', 'proxy-authorization', 'cookie', 'set-cookie'] as const;

export const REDACTED = '[Redacted]';

/** pino `redact` paths: the credential headers wherever a request, a response or a bare header object is logged. */
export const REDACT_PATHS = CREDENTIAL_HEADERS.flatMap((name) => [`headers["${name}"]`, `req.headers["${name}"]`, `res.headers["${name}"]`]);

/** Key names whose values are credentials, however deep in a logged object (by their ending, any case, `_`/`-` or none between words). */
const SECRET_KEY = /(api[-_]?key|secret[-_]?key|private[-_]?key|secrets?|password|passwd|token|authorization|cookie)$/i;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

const MAX_DEPTH = 8;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Whether a logged value holds a secret-looking key (most lines do not: they are passed on uncopied). */
function holdsSecret(value: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((item) => holdsSecret(item, depth + 1));
  if (!isPlainObject(value)) return false;
  for (const key in value) if (isSecretKey(key) || holdsSecret((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

function censored(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => censored(item, depth + 1));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = isSecretKey(key) ? REDACTED : censored(item, depth + 1);
  return out;
}

/**
 * The logged object with the value of every secret-looking key (api_key, secret, password,
 * token…) censored at any depth (pino's redact paths name fixed places), copied only when it holds
 * one. Only plain objects and arrays are walked: Errors and other instances go to their serializers
 * as they are.
 */
export function censorSecrets<T>(value: T): T {
  return holdsSecret(value, 0) ? (censored(value, 0) as T) : value;
}

/** A URL as it may be logged: a `session_api_key` query parameter (how browsers authenticate sockets) censored. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]session_api_key=)[^&#]*/gi, `$1${REDACTED}`);
}
