import { until } from '@berth/testing';
import { adminTenantWithKey, api, Reply, SocketClient, startRequest, startServer, STORAGES, TestServer, useReplicas, userMessage } from './support/server';

const SESSION_KEY = 'quota-suite-session-key';
const ADMIN_KEY = 'quota-suite-admin-key';
const ENV = { OH_SESSION_API_KEYS_0: SESSION_KEY, BERTH_ADMIN_API_KEYS_0: ADMIN_KEY };

const tenantWithKey = (server: TestServer, quotas: Record<string, number>) => adminTenantWithKey(server, ADMIN_KEY, quotas);

/** Request windows are aligned to the minute: start a burst early in one so it cannot straddle two. */
async function freshMinute(): Promise<void> {
  const into = Date.now() % 60_000;
  if (into > 50_000) await new Promise((r) => setTimeout(r, 60_000 - into + 50));
}

function expectTooMany(res: Reply, limit: number): void {
  expect(res.status).toBe(429);
  expect(typeof res.body.detail).toBe('string');
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(res.headers.get('x-ratelimit-limit')).toBe(String(limit));
  expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
  expect(Number(res.headers.get('x-ratelimit-reset'))).toBeGreaterThan(0);
}

describe.each(STORAGES)('tenant quotas (%s)', (storage) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer(storage, { ...ENV, BERTH_WS_AUTH_TIMEOUT_MS: '300', BERTH_WS_MAX_PENDING_PER_ADDRESS: '2' });
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses the sandbox over max_sandboxes with 429 and headers; paused ones do not count, resuming one does', async () => {
    const { key } = await tenantWithKey(server, { max_sandboxes: 1 });
    const first = await api(server, 'POST', '/api/sandboxes', { body: {}, key });
    expect(first.status).toBe(201);
    const second = await api(server, 'POST', '/api/sandboxes', { body: {}, key });
    expectTooMany(second, 1);
    expect((await api(server, 'GET', '/api/sandboxes', { key })).body.items).toHaveLength(1);
    // A conversation that would get a sandbox of its own is refused too; one joining the live sandbox is not.
    expectTooMany(await api(server, 'POST', '/api/conversations', { body: startRequest(), key }), 1);
    expect((await api(server, 'POST', '/api/conversations', { body: startRequest({ sandbox_id: first.body.id }), key })).status).toBe(201);

    expect((await api(server, 'POST', `/api/sandboxes/${first.body.id}/pause`, { key })).status).toBe(200);
    const replacement = await api(server, 'POST', '/api/sandboxes', { body: {}, key });
    expect(replacement.status).toBe(201);
    expectTooMany(await api(server, 'POST', `/api/sandboxes/${first.body.id}/resume`, { key }), 1);
    expect((await api(server, 'POST', `/api/sandboxes/${replacement.body.id}/resume`, { key })).status).toBe(200);
    for (const id of [first.body.id, replacement.body.id]) expect((await api(server, 'DELETE', `/api/sandboxes/${id}`, { key })).status).toBe(200);
  });

  it('answers 429 on run over max_running_conversations; 409 still wins for the running one itself', async () => {
    const { key } = await tenantWithKey(server, { max_running_conversations: 1 });
    const a = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key })).body.id;
    const b = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key })).body.id;
    // Gateway-only server: a queued run stays running.
    expect((await api(server, 'POST', `/api/conversations/${a}/run`, { key })).status).toBe(200);
    expectTooMany(await api(server, 'POST', `/api/conversations/${b}/run`, { key }), 1);
    expect((await api(server, 'POST', `/api/conversations/${a}/run`, { key })).status).toBe(409);
    expectTooMany(await api(server, 'POST', `/api/conversations/${b}/events`, { body: userMessage('go', true), key }), 1);
    expectTooMany(await api(server, 'POST', '/api/conversations', { body: startRequest({ initial_message: userMessage('hi') }), key }), 1);
    expect((await api(server, 'GET', `/api/conversations/${b}`, { key })).body.execution_status).toBe('idle');

    expect((await api(server, 'POST', `/api/conversations/${a}/pause`, { key })).status).toBe(200);
    expect((await api(server, 'POST', `/api/conversations/${b}/run`, { key })).status).toBe(200);
  });

  it('limits requests per minute: X-RateLimit-* on every answer, then 429 with Retry-After', async () => {
    const { key } = await tenantWithKey(server, { requests_per_minute: 3 });
    await freshMinute();
    for (let left = 2; left >= 0; left--) {
      const res = await api(server, 'GET', '/api/conversations/count', { key });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit')).toBe('3');
      expect(res.headers.get('x-ratelimit-remaining')).toBe(String(left));
    }
    expectTooMany(await api(server, 'GET', '/api/conversations/count', { key }), 3);
    // Other tenants are not held back.
    expect((await api(server, 'GET', '/api/conversations/count', { key: SESSION_KEY })).status).toBe(200);
  });

  it('limits open sockets per key: 1013 beyond max_sockets_per_key, a closed one frees its slot', async () => {
    const { key } = await tenantWithKey(server, { max_sockets_per_key: 2 });
    const id = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key })).body.id;
    const url = `${server.wsUrl}/sockets/events/${id}?session_api_key=${key}`;
    const open = [new SocketClient(url), new SocketClient(url)];
    for (const s of open) await s.waitFor((f) => f.length > 0);
    const third = new SocketClient(url);
    expect(await third.waitClosed()).toBe(1013);
    expect(third.closeReason).toBe('Too many sockets for this API key');

    open[0].close();
    await open[0].waitClosed();
    let admitted: SocketClient | undefined;
    await until(async () => {
      const candidate = new SocketClient(url);
      await candidate.waitFor((f) => f.length > 0 || candidate.closeCode !== null).catch(() => undefined);
      if (candidate.closeCode === null) admitted = candidate;
      return admitted !== undefined;
    }, 'a freed socket slot');
    admitted?.close();
    open[1].close();
  });

  it('closes a socket that never authenticates after BERTH_WS_AUTH_TIMEOUT_MS, and caps such sockets per address', async () => {
    const id = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key: SESSION_KEY })).body.id;
    const url = `${server.wsUrl}/sockets/events/${id}`;
    const silent = new SocketClient(url);
    await silent.open();
    expect(await silent.waitClosed()).toBe(4001);

    const waiting = [new SocketClient(url), new SocketClient(url)];
    await Promise.all(waiting.map((s) => s.open()));
    const third = new SocketClient(url);
    expect(await third.waitClosed()).toBe(1013);
    expect(third.closeReason).toBe('Too many unauthenticated sockets from this address');
    // Behind a proxy on a private network, the address is the one the proxy forwarded.
    const proxied = new SocketClient(url, { 'X-Forwarded-For': '203.0.113.7' });
    await proxied.open();
    proxied.send({ type: 'auth', session_api_key: SESSION_KEY });
    await proxied.waitFor((f) => f.length > 0);
    proxied.close();

    for (const s of waiting) expect(await s.waitClosed()).toBe(4001);
    const later = new SocketClient(url);
    await later.open();
    later.send({ type: 'auth', session_api_key: SESSION_KEY });
    await later.waitFor((f) => f.length > 0);
    later.close();
  });
});

describe('tenant quotas across two gateway replicas (postgres, one Redis)', () => {
  const replicas = useReplicas(ENV);

  it('counts one request rate for both replicas', async () => {
    const { key } = await tenantWithKey(replicas.a, { requests_per_minute: 4 });
    await freshMinute();
    const statuses: number[] = [];
    for (const server of [replicas.a, replicas.b, replicas.a, replicas.b]) statuses.push((await api(server, 'GET', '/api/conversations/count', { key })).status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    expectTooMany(await api(replicas.b, 'GET', '/api/conversations/count', { key }), 4);
    expectTooMany(await api(replicas.a, 'GET', '/api/conversations/count', { key }), 4);
  });

  it('counts sandboxes and socket slots of both replicas', async () => {
    const { key } = await tenantWithKey(replicas.a, { max_sandboxes: 1, max_sockets_per_key: 1 });
    const sandbox = await api(replicas.a, 'POST', '/api/sandboxes', { body: {}, key });
    expect(sandbox.status).toBe(201);
    expectTooMany(await api(replicas.b, 'POST', '/api/sandboxes', { body: {}, key }), 1);

    const id = (await api(replicas.a, 'POST', '/api/conversations', { body: startRequest({ sandbox_id: sandbox.body.id }), key })).body.id;
    const held = new SocketClient(`${replicas.a.wsUrl}/sockets/events/${id}?session_api_key=${key}`);
    await held.waitFor((f) => f.length > 0);
    const refused = new SocketClient(`${replicas.b.wsUrl}/sockets/events/${id}?session_api_key=${key}`);
    expect(await refused.waitClosed()).toBe(1013);
    held.close();
    expect((await api(replicas.b, 'DELETE', `/api/sandboxes/${sandbox.body.id}`, { key })).status).toBe(200);
  });
});
