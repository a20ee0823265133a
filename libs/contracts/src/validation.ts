import { z } from 'zod';

/** One entry of a FastAPI/pydantic 422 `detail` list. */
export interface ValidationIssue {
  type: string;
  loc: (string | number)[];
  msg: string;
  input?: unknown;
}

const SECRET_KEY_RE = /(key|token|secret|password|authorization|cookie|credential|session)/i;
const SECRET_CONTAINER_RE = /^(env|environment|headers)$/i;
export const REDACTED = '<redacted>';

/** A key whose value (whatever its shape: `secrets: {DB_PASS: …}`, `api_key: {…}`) is never echoed. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY_RE.test(key) || SECRET_CONTAINER_RE.test(key);
}

/** Request echoes in error bodies must never carry a secret (same key rules as OpenHands). */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8) return '…';
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => redactSecrets(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = isSecretKey(k) && v !== null ? REDACTED : redactSecrets(v, depth + 1);
    return out;
  }
  if (typeof value === 'string' && value.length > 1000) return `${value.slice(0, 1000)}…`;
  return value;
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** Maps zod issues to pydantic-style entries (`type`, `loc`, `msg`, `input`). */
export function toValidationIssues(error: z.ZodError, location: string, input: unknown): ValidationIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const at = valueAt(input, issue.path);
    let type: string = issue.code;
    let msg = issue.message;
    if (issue.code === 'invalid_type' && at === undefined) {
      type = 'missing';
      msg = 'Field required';
    } else if (issue.code === 'invalid_type') {
      type = `${issue.expected}_type`;
    } else if (issue.code === 'unrecognized_keys') {
      type = 'extra_forbidden';
      msg = `Extra inputs are not permitted: ${issue.keys.join(', ')}`;
    } else if (issue.code === 'custom') {
      type = 'value_error';
    }
    const entry: ValidationIssue = { type, loc: [location, ...path], msg };
    // A value under a secret-looking key (or any conversation secret) is never echoed, whatever its shape.
    const secretPath = path.some((p) => typeof p === 'string' && isSecretKey(p));
    if (at !== undefined) entry.input = secretPath ? REDACTED : redactSecrets(at);
    // As pydantic: a missing body field shows the object it is missing from; a missing parameter, null.
    else if (type === 'missing') entry.input = location === 'body' ? (secretPath ? REDACTED : redactSecrets(valueAt(input, issue.path.slice(0, -1)) ?? null)) : null;
    return entry;
  });
}

/**
 * What a JSON syntax error may say in an error body: V8's message quotes the text around the
 * error (`Unexpected token 'x', "{"secrets":…" is not valid JSON`), which may hold a secret.
 */
export function jsonSyntaxMessage(message: string): string {
  return /["']/.test(message) ? 'Invalid JSON' : message;
}

/** How deep a request body or query may nest (objects and arrays). */
export const MAX_INPUT_DEPTH = 64;

/**
 * The first reason a request input cannot be taken, whatever the route: a NUL character in any
 * string or key (PostgreSQL text and jsonb cannot hold one), or nesting deeper than `maxDepth`.
 * The value is never echoed. Walked without recursion, so any depth is safe to look at.
 */
export function unsafeInputIssue(value: unknown, location: string, maxDepth = MAX_INPUT_DEPTH): ValidationIssue | null {
  const stack: { value: unknown; loc: (string | number)[] }[] = [{ value, loc: [] }];
  while (stack.length > 0) {
    const { value: current, loc } = stack.pop()!;
    if (typeof current === 'string') {
      if (current.includes('\0')) return { type: 'value_error', loc: [location, ...loc], msg: 'String should not contain NUL characters' };
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (loc.length >= maxDepth) return { type: 'value_error', loc: [location], msg: `Input should not be nested deeper than ${maxDepth} levels` };
    const entries: [string | number, unknown][] = Array.isArray(current) ? current.map((v, i) => [i, v]) : Object.entries(current);
    for (const [key, v] of entries) {
      if (typeof key === 'string' && key.includes('\0')) return { type: 'value_error', loc: [location, ...loc], msg: 'Keys should not contain NUL characters' };
      stack.push({ value: v, loc: [...loc, key] });
    }
  }
  return null;
}

/**
 * Whether a request path (as sent, before any normalisation) names its route plainly: absolute,
 * no `.`/`..` segment and no empty one (except a trailing slash), nothing in a segment that
 * decodes to a slash, a backslash or NUL, no malformed escape. Proxies and routers that resolve
 * `%2e%2e` would otherwise reach routes the caller never named.
 */
export function isPlainPath(path: string): boolean {
  if (!path.startsWith('/') || path.includes('\\')) return false;
  const segments = path.slice(1).split('/');
  return segments.every((segment, i) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return false;
    }
    if (decoded === '') return i === segments.length - 1;
    return decoded !== '.' && decoded !== '..' && !/[/\\\0]/.test(decoded);
  });
}
