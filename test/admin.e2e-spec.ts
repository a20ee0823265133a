import { sha256Hex } from '@berth/crypto';
import { Database, DEFAULT_TENANT_ID } from '@berth/persistence';
import { until } from '@berth/testing';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { alive } from './support/processes';
import { adminTenantWithKey, api, SocketClient, startRequest, startServer, STORAGES, TestServer, useReplicas } from './support/server';

const SESSION_KEY = 'admin-suite-session-key';
const ADMIN_KEYS = ['admin-suite-admin-0', 'admin-suite-admin-1'];
const ENV = { OH_SESSION_API_KEYS_0: SESSION_KEY, BERTH_ADMIN_API_KEYS: JSON.stringify(ADMIN_KEYS) };

/** Admin calls with the second admin key (so the audit log's admin_key_index is 1). */
const admin = (server: TestServer, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  api(server, method, `/api/admin${path}`, { body, key: ADMIN_KEYS[1], headers });

const tenantWithKey = (server: TestServer, quotas?: Record<string, number>) => adminTenantWithKey(server, ADMIN_KEYS[1], quotas);

describe.each(STORAGES)('admin API (%s)', (storage) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer(storage, ENV);
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers 401 without an admin key: no key, the session key, a tenant key; an admin key opens no tenant route', async () => {
    const { key } = await tenantWithKey(server);
    for (const k of [undefined, SESSION_KEY, key, `${ADMIN_KEYS[0]}x`, ADMIN_KEYS[0].slice(0, -1)]) {
      const res = await api(server, 'GET', '/api/admin/tenants', { key: k });
      expect({ k, status: res.status, body: res.body }).toEqual({ k, status: 401, body: { detail: 'Unauthorized' } });
    }
    expect((await api(server, 'GET', '/api/admin/audit', { key })).status).toBe(401);
    for (const k of ADMIN_KEYS) {
      expect((await api(server, 'GET', '/api/admin/tenants', { key: k })).status).toBe(200);
      expect((await api(server, 'GET', '/api/conversations/count', { key: k })).status).toBe(401);
    }
  });

  it('creates a tenant and a key shown once; the key works on /api/conversations; listings show prefix and last four only', async () => {
    const tenant = await admin(server, 'POST', '/tenants', { name: `acme-${randomUUID()}`, quotas: { max_sandboxes: 3 } });
    expect(tenant.status).toBe(201);
    expect(tenant.body).toMatchObject({
      quotas: { max_sandboxes: 3, max_running_conversations: null, requests_per_minute: null, max_sockets_per_key: null },
      // What it does not set, the BERTH_TENANT_* defaults bound: a hosted tenant is never unlimited by accident.
      effective_quotas: { max_sandboxes: 3, max_running_conversations: 10, requests_per_minute: 1200, max_sockets_per_key: 50 },
    });
    // The default tenant (the session keys' owner) has no limit but what is stored for it.
    expect((await admin(server, 'GET', `/tenants/${DEFAULT_TENANT_ID}`)).body.effective_quotas).toMatchObject({
      max_sandboxes: 0,
      max_running_conversations: 0,
      requests_per_minute: 0,
      max_sockets_per_key: 0,
    });
    const tenantId = tenant.body.id;
    const created = await admin(server, 'POST', `/tenants/${tenantId}/api-keys`, { name: 'deploy' });
    expect(created.status).toBe(201);
    const key: string = created.body.key;
    expect(key).toMatch(/^brt_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key.slice(4), 'base64url')).toHaveLength(32);
    expect(created.body).toMatchObject({ tenant_id: tenantId, name: 'deploy', prefix: key.slice(0, 8), last_four: key.slice(-4), last_used_at: null, revoked_at: null });

    const conversation = await api(server, 'POST', '/api/conversations', { body: startRequest(), key });
    expect(conversation.status).toBe(201);
    expect((await api(server, 'GET', '/api/conversations/count', { key })).body).toBe(1);
    expect((await api(server, 'GET', `/api/conversations/${conversation.body.id}`, { key: SESSION_KEY })).status).toBe(404);

    const db = server.app.get(Database);
    const row = await db.prisma.apiKey.findUniqueOrThrow({ where: { id: created.body.id } });
    expect(row.keyHash).toBe(sha256Hex(key));
    await until(async () => (await admin(server, 'GET', `/tenants/${tenantId}/api-keys`)).body.items[0].last_used_at !== null, 'last_used_at');
    const listing = await admin(server, 'GET', `/tenants/${tenantId}/api-keys`);
    expect(listing.body.items).toHaveLength(1);
    expect(listing.body.items[0]).toMatchObject({ id: created.body.id, prefix: key.slice(0, 8), last_four: key.slice(-4) });
    expect(listing.body.items[0].key).toBeUndefined();
    const text = JSON.stringify([listing.body, (await admin(server, 'GET', `/tenants/${tenantId}`)).body, (await admin(server, 'GET', '/tenants')).body]);
    expect(text).not.toContain(key);
    expect(text).not.toContain(row.keyHash);
    expect(text).not.toContain(key.slice(8, -4));
  });

  it('revocation refuses the key from the very next request, sockets included', async () => {
    const { tenantId, key, keyId } = await tenantWithKey(server);
    const id = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key })).body.id;
    // The lookup is cached now; revocation must not wait for it to lapse.
    expect((await api(server, 'GET', `/api/conversations/${id}`, { key })).status).toBe(200);
    const openBefore = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${key}`);
    await openBefore.waitFor((f) => f.length > 0);
    const revoked = await admin(server, 'DELETE', `/tenants/${tenantId}/api-keys/${keyId}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toEqual(expect.any(String));
    expect((await api(server, 'GET', `/api/conversations/${id}`, { key })).status).toBe(401);
    const socket = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${key}`);
    expect(await socket.waitClosed()).toBe(4001);
    // A socket opened before is closed too: it could still send messages that start runs.
    expect(await openBefore.waitClosed()).toBe(4001);
    expect(openBefore.closeReason).toBe('API key revoked or expired');
    expect((await admin(server, 'GET', `/tenants/${tenantId}/api-keys`)).body.items[0].revoked_at).toBe(revoked.body.revoked_at);
    expect((await admin(server, 'DELETE', `/tenants/${tenantId}/api-keys/${randomUUID()}`)).status).toBe(404);
  });

  it('refuses a key past its expires_at, and one created already expired', async () => {
    const tenantId = (await tenantWithKey(server)).tenantId;
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const created = await admin(server, 'POST', `/tenants/${tenantId}/api-keys`, { name: 'short', expires_at: expiresAt });
    expect(created.status).toBe(201);
    expect(Date.parse(created.body.expires_at)).toBe(Date.parse(expiresAt));
    expect((await api(server, 'GET', '/api/conversations/count', { key: created.body.key })).status).toBe(200);
    await until(async () => (await api(server, 'GET', '/api/conversations/count', { key: created.body.key })).status === 401, 'the key to expire');
    const past = await admin(server, 'POST', `/tenants/${tenantId}/api-keys`, { name: 'past', expires_at: '2020-01-01T00:00:00' });
    expect(past.status).toBe(422);
    expect(past.body.detail[0].loc).toEqual(['body', 'expires_at']);
  });

  it("keeps a tenant's egress_cidrs allowlist, never with link-local or a cluster range", async () => {
    const made = await admin(server, 'POST', '/tenants', { name: `egress-${randomUUID()}`, quotas: { egress_cidrs: ['203.0.113.0/24'] } });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ quotas: { egress_cidrs: ['203.0.113.0/24'] }, effective_quotas: { egress_cidrs: ['203.0.113.0/24'] } });
    const refused = [
      [['169.254.169.254/32'], /169\.254\.0\.0\/16/],
      [['0.0.0.0/0'], /169\.254\.0\.0\/16|cluster range/],
      [['10.96.0.0/12'], /overlaps the cluster range 10\.0\.0\.0\/8/],
      [['192.168.1.0/24'], /cluster range 192\.168\.0\.0\/16/],
      [['not-a-cidr'], /IPv4 CIDR/],
    ] as const;
    for (const [cidrs, message] of refused) {
      const answer = await admin(server, 'PATCH', `/tenants/${made.body.id}`, { quotas: { egress_cidrs: cidrs } });
      expect(answer.status).toBe(422);
      expect(JSON.stringify(answer.body)).toMatch(message);
    }
    // Nothing refused was stored; null clears the allowlist.
    expect((await admin(server, 'GET', `/tenants/${made.body.id}`)).body.quotas.egress_cidrs).toEqual(['203.0.113.0/24']);
    const cleared = await admin(server, 'PATCH', `/tenants/${made.body.id}`, { quotas: { egress_cidrs: null } });
    expect(cleared.body).toMatchObject({ quotas: { egress_cidrs: null }, effective_quotas: { egress_cidrs: [] } });
  });

  it('gets, lists page by page, renames and re-quotas tenants; names are unique; the default tenant stays', async () => {
    const name = `paged-${randomUUID()}`;
    const a = (await admin(server, 'POST', '/tenants', { name })).body;
    const b = (await admin(server, 'POST', '/tenants', { name: `${name}-b` })).body;
    expect((await admin(server, 'POST', '/tenants', { name })).status).toBe(409);
    expect((await admin(server, 'POST', '/tenants', { name: '' })).status).toBe(422);
    expect((await admin(server, 'POST', '/tenants', { name: 'x', quotas: { max_sandboxes: -1 } })).status).toBe(422);
    expect((await admin(server, 'POST', '/tenants', { name: 'x', quotas: { unknown: 1 } })).status).toBe(422);

    const first = await admin(server, 'GET', '/tenants?limit=1');
    expect(first.body.items.map((t: any) => t.id)).toEqual([b.id]);
    const second = await admin(server, 'GET', `/tenants?limit=1&page_id=${first.body.next_page_id}`);
    expect(second.body.items.map((t: any) => t.id)).toEqual([a.id]);
    const all = await admin(server, 'GET', '/tenants');
    expect(all.body.items.map((t: any) => t.id)).toContain(DEFAULT_TENANT_ID);

    const patched = await admin(server, 'PATCH', `/tenants/${a.id}`, { quotas: { max_sandboxes: 2, requests_per_minute: 100 } });
    expect(patched.body.quotas).toMatchObject({ max_sandboxes: 2, requests_per_minute: 100 });
    const again = await admin(server, 'PATCH', `/tenants/${a.id}`, { name: `${name}-renamed`, quotas: { max_sandboxes: null } });
    expect(again.body).toMatchObject({ name: `${name}-renamed`, quotas: { max_sandboxes: null, requests_per_minute: 100 } });
    expect((await admin(server, 'GET', `/tenants/${a.id}`)).body).toEqual(again.body);
    expect((await admin(server, 'PATCH', `/tenants/${a.id}`, { name: `${name}-b` })).status).toBe(409);
    expect((await admin(server, 'GET', `/tenants/${randomUUID()}`)).status).toBe(404);
    expect((await admin(server, 'PATCH', `/tenants/${randomUUID()}`, { name: 'nobody' })).status).toBe(404);
    expect((await admin(server, 'GET', '/tenants/not-a-uuid')).status).toBe(422);

    const refused = await admin(server, 'DELETE', `/tenants/${DEFAULT_TENANT_ID}`);
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({ detail: 'The default tenant cannot be deleted' });
    expect((await api(server, 'GET', '/api/conversations/count', { key: SESSION_KEY })).status).toBe(200);
  });

  it('deleting a tenant destroys its sandboxes (executors ended, folders removed), removes its rows and refuses its keys', async () => {
    const db = server.app.get(Database);
    const { tenantId, key } = await tenantWithKey(server);
    const sandbox = await api(server, 'POST', '/api/sandboxes', { body: {}, key });
    expect(sandbox.status).toBe(201);
    const conversation = await api(server, 'POST', '/api/conversations', { body: startRequest({ sandbox_id: sandbox.body.id }), key });
    expect(conversation.status).toBe(201);
    const handle = (await db.prisma.sandbox.findUniqueOrThrow({ where: { id: sandbox.body.id } })).handle as { pid: number; root: string };
    expect(alive(handle.pid)).toBe(true);
    expect(existsSync(handle.root)).toBe(true);

    expect((await admin(server, 'DELETE', `/tenants/${tenantId}`)).status).toBe(200);
    expect((await api(server, 'GET', '/api/conversations/count', { key })).status).toBe(401);
    await until(() => !alive(handle.pid), 'the executor to end');
    expect(existsSync(handle.root)).toBe(false);
    expect(await db.prisma.tenant.count({ where: { id: tenantId } })).toBe(0);
    expect(await db.prisma.sandbox.count({ where: { tenantId } })).toBe(0);
    expect(await db.prisma.conversation.count({ where: { tenantId } })).toBe(0);
    expect(await db.prisma.event.count({ where: { conversationId: conversation.body.id } })).toBe(0);
    expect(await db.prisma.apiKey.count({ where: { tenantId } })).toBe(0);
    expect((await admin(server, 'GET', `/tenants/${tenantId}`)).status).toBe(404);
    expect((await admin(server, 'DELETE', `/tenants/${tenantId}`)).status).toBe(404);
  });

  it('audits who created, ran, paused, interrupted and deleted what, with the request id; readable by admins only', async () => {
    const { tenantId, key, keyId } = await tenantWithKey(server);
    const requestId = `req-${randomUUID()}`;
    const id = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key, headers: { 'X-Request-Id': requestId } })).body.id;
    const run = await api(server, 'POST', `/api/conversations/${id}/run`, { key });
    expect(run.status).toBe(200);
    expect(run.headers.get('x-request-id')).toEqual(expect.any(String));
    expect((await api(server, 'POST', `/api/conversations/${id}/pause`, { key })).status).toBe(200);
    expect((await api(server, 'POST', `/api/conversations/${id}/interrupt`, { key })).status).toBe(200);
    expect((await api(server, 'DELETE', `/api/conversations/${id}`, { key })).status).toBe(200);
    const sandbox = (await api(server, 'POST', '/api/sandboxes', { body: {}, key })).body.id;
    expect((await api(server, 'POST', `/api/sandboxes/${sandbox}/pause`, { key })).status).toBe(200);
    expect((await api(server, 'DELETE', `/api/sandboxes/${sandbox}`, { key })).status).toBe(200);

    const log = await admin(server, 'GET', `/audit?tenant_id=${tenantId}`);
    expect(log.status).toBe(200);
    const seen = log.body.items.map((r: any) => `${r.action} ${r.target_type}`).reverse();
    expect(seen).toEqual([
      'create tenant',
      'create api_key',
      'create conversation',
      'run conversation',
      'pause conversation',
      'interrupt conversation',
      'delete conversation',
      'create sandbox',
      'pause sandbox',
      'delete sandbox',
    ]);
    const byTenant = log.body.items.filter((r: any) => r.key_id !== null);
    expect(byTenant.every((r: any) => r.key_id === keyId && r.admin_key_index === null && r.tenant_id === tenantId)).toBe(true);
    expect(log.body.items.find((r: any) => r.target_type === 'api_key')).toMatchObject({ admin_key_index: 1, key_id: null, target_id: keyId });
    expect(log.body.items.find((r: any) => r.action === 'create' && r.target_type === 'conversation')).toMatchObject({ target_id: id, request_id: requestId });
    expect(JSON.stringify(log.body)).not.toContain(key);

    const page = await admin(server, 'GET', `/audit?tenant_id=${tenantId}&limit=4`);
    expect(page.body.items).toHaveLength(4);
    const rest = await admin(server, 'GET', `/audit?tenant_id=${tenantId}&limit=100&page_id=${page.body.next_page_id}`);
    expect([...page.body.items, ...rest.body.items]).toEqual(log.body.items);
    expect((await api(server, 'GET', '/api/admin/audit', { key })).status).toBe(401);
    expect((await admin(server, 'GET', '/audit?tenant_id=nope')).status).toBe(422);
  });

  it('documents the admin routes in /openapi.json with their schemas', async () => {
    const doc = (await api(server, 'GET', '/openapi.json')).body;
    for (const [path, methods] of Object.entries({
      '/api/admin/tenants': ['get', 'post'],
      '/api/admin/tenants/{tenant_id}': ['get', 'patch', 'delete'],
      '/api/admin/tenants/{tenant_id}/api-keys': ['get', 'post'],
      '/api/admin/tenants/{tenant_id}/api-keys/{key_id}': ['delete'],
      '/api/admin/audit': ['get'],
    })) {
      expect(Object.keys(doc.paths[path] ?? {}).sort()).toEqual([...methods].sort());
      for (const method of methods) expect(doc.paths[path][method].security).toEqual([{ 'admin-api-key': [] }]);
    }
    expect(doc.paths['/api/admin/tenants'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateTenantRequest' });
    for (const id of ['TenantInfo', 'TenantPage', 'TenantQuotas', 'CreatedApiKey', 'ApiKeyInfo', 'ApiKeyPage', 'AuditRecord', 'AuditPage']) {
      expect(doc.components.schemas[id]).toBeDefined();
    }
    expect(doc.components.securitySchemes['admin-api-key']).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Session-API-Key' });
  });
});

describe('admin API across two gateway replicas (postgres, one Redis)', () => {
  const replicas = useReplicas(ENV);

  it('a key revoked on one replica is refused at once on the other, whose cache held it', async () => {
    const { tenantId, key, keyId } = await tenantWithKey(replicas.a);
    expect((await api(replicas.b, 'GET', '/api/conversations/count', { key })).status).toBe(200);
    expect((await api(replicas.a, 'GET', '/api/conversations/count', { key })).status).toBe(200);
    expect((await admin(replicas.a, 'DELETE', `/tenants/${tenantId}/api-keys/${keyId}`)).status).toBe(200);
    expect((await api(replicas.b, 'GET', '/api/conversations/count', { key })).status).toBe(401);
    expect((await api(replicas.a, 'GET', '/api/conversations/count', { key })).status).toBe(401);
  });

  it('a tenant deleted on one replica has its keys refused at once on the other', async () => {
    const { tenantId, key } = await tenantWithKey(replicas.b);
    expect((await api(replicas.a, 'GET', '/api/conversations/count', { key })).status).toBe(200);
    expect((await admin(replicas.b, 'DELETE', `/tenants/${tenantId}`)).status).toBe(200);
    expect((await api(replicas.a, 'GET', '/api/conversations/count', { key })).status).toBe(401);
  });
});
