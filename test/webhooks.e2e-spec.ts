import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebhookDispatcher, webhookKey } from '@berth/webhooks';
import { eventually } from './support/processes';
import { api, startRequest, startServer, STORAGES, TestServer, userMessage, testQueuePrefix } from './support/server';

const KEY = 'webhook-test-key';

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
  at: number;
}

/** A webhook receiver that records what it is sent; the next `failNext` requests to paths matching `failPath` get 503. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  readonly refusals: number[] = [];
  failNext = 0;
  failPath = /./;
  retryAfter: string | null = null;
  private server?: Server;
  url = '';

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.failNext > 0 && this.failPath.test(req.url as string)) {
          this.failNext--;
          this.refusals.push(Date.now());
          res.writeHead(503, this.retryAfter ? { 'retry-after': this.retryAfter } : {}).end('busy');
          return;
        }
        this.deliveries.push({ path: req.url as string, headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')), at: Date.now() });
        res.writeHead(200).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/hooks`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  /** Every event delivered for a conversation, in delivery order. */
  events(conversationId: string): any[] {
    const path = `/hooks/events/${conversationId.replace(/-/g, '')}`;
    return this.deliveries.filter((d) => d.path === path).flatMap((d) => d.body);
  }

  conversations(conversationId: string): any[] {
    return this.deliveries.filter((d) => d.path === '/hooks/conversations' && d.body.id === conversationId).map((d) => d.body);
  }
}

function webhookEnv(receiver: Receiver, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OH_SESSION_API_KEYS_0: KEY,
    OH_WEBHOOKS_0_BASE_URL: receiver.url,
    OH_WEBHOOKS_0_HEADERS: JSON.stringify({ Authorization: 'Bearer receiver-token' }),
    OH_WEBHOOKS_0_EVENT_BUFFER_SIZE: '2',
    OH_WEBHOOKS_0_FLUSH_DELAY: '0.2',
    OH_WEBHOOKS_0_NUM_RETRIES: '3',
    OH_WEBHOOKS_0_RETRY_DELAY: '0.1',
    ...extra,
  };
}

async function storedEventIds(server: TestServer, conversationId: string): Promise<string[]> {
  const page = await api(server, 'GET', `/api/conversations/${conversationId}/events/search?limit=100`, { key: KEY });
  return page.body.items.map((e: any) => e.id);
}

describe.each(STORAGES)('webhooks (%s)', (storage) => {
  let receiver: Receiver;
  let server: TestServer | undefined;

  beforeEach(async () => {
    receiver = new Receiver();
    await receiver.start();
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await receiver.stop();
  });

  it('sends every stored event in order, in batches, once, with the configured headers', async () => {
    server = await startServer(storage, webhookEnv(receiver));
    const created = await api(server, 'POST', '/api/conversations', { key: KEY, body: startRequest({ initial_message: userMessage('hi') }) });
    const id = created.body.id as string;
    for (const text of ['two', 'three', 'four']) {
      expect((await api(server, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage(text) })).status).toBe(200);
    }
    const ids = await storedEventIds(server, id);
    expect(ids.length).toBeGreaterThanOrEqual(6);
    expect(await eventually(() => receiver.events(id).length >= ids.length)).toBe(true);
    await new Promise((r) => setTimeout(r, 400)); // nothing more (no duplicates) arrives after a flush
    expect(receiver.events(id).map((e) => e.id)).toEqual(ids);

    const batches = receiver.deliveries.filter((d) => d.path.startsWith('/hooks/events/'));
    expect(batches.every((b) => Array.isArray(b.body) && b.body.length >= 1 && b.body.length <= 2)).toBe(true);
    for (const b of batches) {
      expect(b.headers.authorization).toBe('Bearer receiver-token');
      expect(b.headers['x-session-api-key']).toBe(KEY);
      expect(b.headers['content-type']).toBe('application/json');
      // <webhook key>-<conversation hex>-<first seq>-<last seq>: names the batch on every resend.
      expect(b.headers['idempotency-key']).toMatch(new RegExp(`^[0-9a-f]{16}-${id.replace(/-/g, '')}-\\d+-\\d+$`));
    }
    const keys = batches.map((b) => b.headers['idempotency-key']);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('sends ConversationInfo on start, update, pause and delete, without secrets', async () => {
    server = await startServer(storage, webhookEnv(receiver));
    const created = await api(server, 'POST', '/api/conversations', { key: KEY, body: startRequest() });
    const id = created.body.id as string;
    expect((await api(server, 'PATCH', `/api/conversations/${id}`, { key: KEY, body: { title: 'Renamed' } })).status).toBe(200);
    expect((await api(server, 'POST', `/api/conversations/${id}/pause`, { key: KEY })).status).toBe(200);
    expect((await api(server, 'DELETE', `/api/conversations/${id}`, { key: KEY })).status).toBe(200);

    expect(await eventually(() => receiver.conversations(id).length >= 4)).toBe(true);
    const infos = receiver.conversations(id);
    expect(infos.map((i) => i.execution_status)).toEqual(['idle', 'idle', 'paused', 'deleting']);
    expect(infos[1].title).toBe('Renamed');
    expect(JSON.stringify(infos)).not.toContain('sk-test-should-never-leak');
    expect(infos[0].agent.llm.api_key).toBeNull();
  });

  it('retries a failing receiver after the Retry-After it asks for, and loses nothing', async () => {
    receiver.failNext = 2;
    receiver.failPath = /\/events\//;
    receiver.retryAfter = '1';
    server = await startServer(storage, webhookEnv(receiver));
    const created = await api(server, 'POST', '/api/conversations', { key: KEY, body: startRequest({ initial_message: userMessage('hi') }) });
    const id = created.body.id as string;
    const ids = await storedEventIds(server, id);

    expect(await eventually(() => receiver.events(id).length >= ids.length, 15_000)).toBe(true);
    expect(receiver.refusals).toHaveLength(2);
    // The receiver asked for a second between tries; the configured 0.1 s retry delay was not used.
    expect(receiver.refusals[1] - receiver.refusals[0]).toBeGreaterThanOrEqual(900);
    const firstSuccess = receiver.deliveries.find((d) => d.path.includes('/events/'))!.at;
    expect(firstSuccess - receiver.refusals[1]).toBeGreaterThanOrEqual(900);
    expect(receiver.events(id).map((e) => e.id)).toEqual(ids);
  });

  it('delivers after a restart what a receiver outage held back', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-webhook-'));
    const prefix = testQueuePrefix();
    const env = webhookEnv(receiver, { BERTH_QUEUE_PREFIX: prefix, OH_WEBHOOKS_0_NUM_RETRIES: '0' });
    try {
      receiver.failNext = 1000; // down: refuses everything
      server = await startServer(storage, env, dataDir);
      const created = await api(server, 'POST', '/api/conversations', { key: KEY, body: startRequest({ initial_message: userMessage('hi') }) });
      const id = created.body.id as string;
      const ids = await storedEventIds(server, id);
      expect(await eventually(() => receiver.refusals.length >= 1)).toBe(true);
      await server.close();
      server = undefined;

      receiver.failNext = 0; // back up
      server = await startServer(storage, env, dataDir);
      expect(await eventually(() => receiver.events(id).length >= ids.length, 15_000)).toBe(true);
      expect(receiver.events(id).map((e) => e.id)).toEqual(ids);
    } finally {
      await server?.close();
      server = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('keeps at most max_queue_size undelivered events per conversation, dropping the oldest', async () => {
    receiver.failNext = 1000;
    server = await startServer(storage, webhookEnv(receiver, { OH_WEBHOOKS_0_MAX_QUEUE_SIZE: '3', OH_WEBHOOKS_0_NUM_RETRIES: '0' }));
    const created = await api(server, 'POST', '/api/conversations', { key: KEY, body: startRequest({ initial_message: userMessage('one') }) });
    const id = created.body.id as string;
    for (const text of ['two', 'three', 'four', 'five']) await api(server, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage(text) });
    const ids = await storedEventIds(server, id);
    receiver.failNext = 0;
    expect(await eventually(() => receiver.events(id).length >= 3, 15_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    expect(receiver.events(id).map((e) => e.id)).toEqual(ids.slice(-3));
  });

  it('measures delivery lag per receiver: the age of the oldest event not yet sent, 0 once all are', async () => {
    receiver.failNext = 1000;
    server = await startServer(storage, webhookEnv(receiver, { OH_WEBHOOKS_0_NUM_RETRIES: '0' }));
    const dispatcher = server.app.get(WebhookDispatcher);
    const key = webhookKey(server.config.webhooks[0]);
    expect(await dispatcher.deliveryLagSeconds()).toEqual(new Map([[key, 0]]));
    const before = Date.now();
    const created = await api(server, 'POST', '/api/conversations', { key: KEY, body: startRequest({ initial_message: userMessage('hi') }) });
    const id = created.body.id as string;
    expect(await eventually(() => receiver.refusals.length >= 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 1200));
    const behind = (await dispatcher.deliveryLagSeconds()).get(key) as number;
    expect(behind).toBeGreaterThanOrEqual(1);
    expect(behind).toBeLessThanOrEqual((Date.now() - before) / 1000 + 1);
    // Operators read the same figure on /metrics, labelled with the webhook's key (never its URL).
    const scrapedLag = async () => {
      const text = await (await fetch(`${server!.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`berth_webhook_delivery_lag_seconds{webhook="${key}"}`));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    };
    expect(await scrapedLag()).toBeGreaterThanOrEqual(1);

    receiver.failNext = 0;
    const ids = await storedEventIds(server, id);
    expect(await eventually(() => receiver.events(id).length >= ids.length, 15_000)).toBe(true);
    expect(await eventually(async () => (await dispatcher.deliveryLagSeconds()).get(key) === 0)).toBe(true);
    expect(await scrapedLag()).toBe(0);
  });

  it('refuses a malformed webhook configuration at start-up', async () => {
    await expect(startServer(storage, { OH_WEBHOOKS_0_BASE_URL: 'not a url' })).rejects.toThrow(/OH_WEBHOOKS_0_BASE_URL/);
    await expect(startServer(storage, { OH_WEBHOOKS_0_BASE_URL: receiver.url, OH_WEBHOOKS_0_HEADERS: '[1]' })).rejects.toThrow(/HEADERS/);
  });
});
