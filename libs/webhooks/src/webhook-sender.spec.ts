import { createServer, IncomingHttpHeaders } from 'node:http';
import type { WebhookSpec } from '@berth/config';
import { RetryLater } from '@berth/queue';
import { parseRetryAfter, postWebhook, retryDelayMs, webhookKey } from './webhook-sender';

const spec = (baseUrl: string): WebhookSpec => ({
  baseUrl,
  headers: { 'X-Receiver': 'r1' },
  eventBufferSize: 5,
  flushDelayMs: 1000,
  numRetries: 3,
  retryDelayMs: 500,
  maxQueueSize: 10,
  maxBatchBytes: 1 << 20,
});

describe('webhook sender', () => {
  it('reads Retry-After as seconds or an HTTP date, capped at ten minutes', () => {
    const now = Date.parse('2026-11-25T12:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 25 Nov 2026 12:00:07 GMT', now)).toBe(7000);
    expect(parseRetryAfter('Wed, 25 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('86400', now)).toBe(600_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('doubles retry_delay per retry unless the receiver said when', () => {
    const s = spec('http://x');
    expect([1, 2, 3].map((n) => retryDelayMs(s, n, new Error('down')))).toEqual([500, 1000, 2000]);
    expect(retryDelayMs(s, 3, new RetryLater('busy', 4000))).toBe(4000);
  });

  it('names a webhook by its URL, not its position', () => {
    expect(webhookKey(spec('http://a'))).toBe(webhookKey(spec('http://a')));
    expect(webhookKey(spec('http://a'))).not.toBe(webhookKey(spec('http://b')));
  });

  it('POSTs JSON with the spec headers and the session key; a non-2xx is a RetryLater with its Retry-After', async () => {
    const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
    let status = 200;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ url: req.url as string, headers: req.headers, body });
        res.writeHead(status, status === 429 ? { 'retry-after': '2' } : {}).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/in`;
    try {
      await postWebhook(spec(base), '/conversations', '{"a":1}', 'key-1');
      expect(seen[0]).toMatchObject({ url: '/in/conversations', body: '{"a":1}' });
      expect(seen[0].headers).toMatchObject({ 'x-receiver': 'r1', 'x-session-api-key': 'key-1', 'content-type': 'application/json' });
      status = 429;
      const failure = await postWebhook(spec(base), '/events/ab', '[]', undefined).catch((e) => e);
      expect(failure).toBeInstanceOf(RetryLater);
      expect(failure.retryAfterMs).toBe(2000);
      expect(seen[1].headers['x-session-api-key']).toBeUndefined();
    } finally {
      server.close();
    }
    const refused = await postWebhook(spec(base), '/x', '[]', undefined).catch((e) => e);
    expect(refused).toBeInstanceOf(RetryLater);
    expect(refused.retryAfterMs).toBeUndefined();
  });
});
