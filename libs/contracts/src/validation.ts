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

/** Request echoes in error bodies must never carry a secret (same key rules as OpenHands). */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8) return '…';
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => redactSecrets(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_CONTAINER_RE.test(k) && v !== null) out[k] = REDACTED;
      else out[k] = SECRET_KEY_RE.test(k) && v !== null && typeof v !== 'object' ? REDACTED : redactSecrets(v, depth + 1);
    }
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
    const secretPath = path.some((p) => typeof p === 'string' && (SECRET_KEY_RE.test(p) || SECRET_CONTAINER_RE.test(p) || p === 'secrets'));
    if (at !== undefined) entry.input = secretPath ? REDACTED : redactSecrets(at);
    return entry;
  });
}
