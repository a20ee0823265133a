import { createHash } from 'node:crypto';
import type { WebhookSpec } from '@berth/config';
import { RetryLater } from '@berth/queue';

const TIMEOUT_MS = 30_000;
/** A receiver asking for more than this is retried after this (keeps a job from parking for days). */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** A webhook's stable name: its base URL hashed, so cursors survive renumbering OH_WEBHOOKS_<n>. */
export function webhookKey(spec: WebhookSpec): string {
  return createHash('sha256').update(spec.baseUrl).digest('hex').slice(0, 16);
}

/** `Retry-After` as milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const ms = /^\s*\d+\s*$/.test(value) ? Number(value) * 1000 : Date.parse(value) - now;
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS) : undefined;
}

/** Delay before retry `retry` (1-based): what the receiver asked for, else retry_delay doubled each time. */
export function retryDelayMs(spec: WebhookSpec, retry: number, error: Error): number {
  if (error instanceof RetryLater && error.retryAfterMs !== undefined) return error.retryAfterMs;
  return Math.min(spec.retryDelayMs * 2 ** (retry - 1), MAX_RETRY_AFTER_MS);
}

/**
 * POSTs JSON to a receiver; anything but a 2xx is a RetryLater. `idempotencyKey` names the batch
 * (the same on every resend of it), so a receiver can drop a repeat.
 */
export async function postWebhook(spec: WebhookSpec, path: string, body: string, sessionApiKey: string | undefined, idempotencyKey?: string): Promise<void> {
  const headers: Record<string, string> = { ...spec.headers, 'content-type': 'application/json' };
  if (sessionApiKey) headers['x-session-api-key'] = sessionApiKey;
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const url = new URL(spec.baseUrl + path);
  // Logged without credentials or query (receivers often carry a token there).
  const target = `POST ${url.origin}${url.pathname}`;
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    throw new RetryLater(`${target}: ${(err as Error).message}`);
  }
  // The body is not used; reading it frees the connection for keep-alive.
  await response.arrayBuffer().catch(() => undefined);
  if (!response.ok) throw new RetryLater(`${target}: HTTP ${response.status}`, parseRetryAfter(response.headers.get('retry-after')));
}
