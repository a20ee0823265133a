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

  it("gives sandboxes the network asked for within the tenant's allowance (403 above it), shown and kept across restarts", async () => {
    const { tenantId, key } = await tenantWithKey(server, {});
    // Interfaces and routes as the sandbox sees them (no traffic leaves: nothing is sent).
    const links = async (id: string) =>
      (await api(server, 'POST', `/sandboxes/${id}/api/bash/execute_bash_command`, { body: { command: 'cat /proc/net/dev /proc/net/route' }, key })).body.stdout as string;
    // The server default (BERTH_SANDBOX_NETWORK, none here) is the allowance of a tenant whose quotas name none.
    const plain = await api(server, 'POST', '/api/sandboxes', { body: {}, key });
    expect(plain.status).toBe(201);
    expect(plain.body.network).toBe('none');
    expect(await links(plain.body.id)).not.toContain('tap0');
    const refused = await api(server, 'POST', '/api/sandboxes', { body: { network: 'egress' }, key });
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toMatch(/egress is not allowed.*allowance is none/);
    expect((await api(server, 'GET', '/api/sandboxes', { key })).body.items).toHaveLength(1);
    expect((await api(server, 'POST', '/api/sandboxes', { body: { network: 'bogus' }, key })).status).toBe(422);

    const raised = await api(server, 'PATCH', `/api/admin/tenants/${tenantId}`, { body: { quotas: { network: 'egress' } }, key: ADMIN_KEY });
    expect(raised.status).toBe(200);
    expect(raised.body.quotas.network).toBe('egress');
    expect(raised.body.effective_quotas.network).toBe('egress');
    expect((await api(server, 'PATCH', `/api/admin/tenants/${tenantId}`, { body: { quotas: { network: 'everything' } }, key: ADMIN_KEY })).status).toBe(422);
    // The allowance is also the default; none may still be asked for.
    const open = await api(server, 'POST', '/api/sandboxes', { body: {}, key });
    expect(open.body.network).toBe('egress');
    expect((await api(server, 'GET', `/api/sandboxes/${open.body.id}`, { key })).body.network).toBe('egress');
    expect(await links(open.body.id)).toMatch(/^tap0\s+00000000\s/m);
    const closed = await api(server, 'POST', '/api/sandboxes', { body: { network: 'none' }, key });
    expect(closed.body.network).toBe('none');
    expect(await links(closed.body.id)).not.toContain('tap0');
    // A restart keeps the network.
    expect((await api(server, 'POST', `/api/sandboxes/${open.body.id}/pause`, { key })).status).toBe(200);
    expect((await api(server, 'POST', `/api/sandboxes/${open.body.id}/resume`, { key })).status).toBe(200);
    expect(await links(open.body.id)).toMatch(/^tap0\s+00000000\s/m);

    // Lowered again: the egress sandbox does not start again with more than the allowance.
    const lowered = await api(server, 'PATCH', `/api/admin/tenants/${tenantId}`, { body: { quotas: { network: null } }, key: ADMIN_KEY });
    expect(lowered.body.quotas.network).toBeNull();
    expect(lowered.body.effective_quotas.network).toBe('none');
    expect((await api(server, 'POST', `/api/sandboxes/${open.body.id}/pause`, { key })).status).toBe(200);
    const resumed = await api(server, 'POST', `/api/sandboxes/${open.body.id}/resume`, { key });
    expect(resumed.status).toBe(403);
    expect(resumed.body.detail).toMatch(/egress is not allowed/);
    for (const id of [plain.body.id, open.body.id, closed.body.id]) expect((await api(server, 'DELETE', `/api/sandboxes/${id}`, { key })).status).toBe(200);
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
