import { Database } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { api, createTenant, SocketClient, startRequest, startServer, STORAGES, TestServer } from './support/server';

const KEY = 'surface-key-1';
const ROTATED = 'surface-key-2';
const PUBLIC = ['/', '/alive', '/health', '/ready', '/server_info', '/docs', '/openapi.json', '/metrics'];

/** Every route of the OpenAPI document, with path parameters filled in. */
function routesOf(doc: any): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const method of Object.keys(item)) {
      out.push({ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, randomUUID()) });
    }
  }
  return out;
}

describe.each(STORAGES)('HTTP surface: auth, CORS, OpenAPI, probes (%s)', (storage) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer(storage, {
      OH_SESSION_API_KEYS: JSON.stringify([KEY, ROTATED]),
      OH_ALLOW_CORS_ORIGINS_0: 'https://app.example.com',
      OH_ALLOW_CORS_ORIGIN_REGEX: 'https://[a-z]+\\.preview\\.example\\.org',
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('serves the public probes and server details without a key', async () => {
    expect((await api(server, 'GET', '/health')).body).toEqual({ status: 'ok' });
    expect((await api(server, 'GET', '/alive')).body).toEqual({ status: 'ok' });
    const ready = await api(server, 'GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
    const info = await api(server, 'GET', '/server_info');
    expect(info.body).toMatchObject({ title: 'OpenHands Agent Server', version: '1.58.2', docs: '/docs' });
    expect(typeof info.body.uptime).toBe('number');
    expect(typeof info.body.idle_time).toBe('number');
    expect(info.body.usable_tools).toEqual(expect.arrayContaining(['terminal', 'file_editor', 'task_tracker']));
    expect((await api(server, 'GET', '/')).body.title).toBe('OpenHands Agent Server');
    const docs = await fetch(`${server.url}/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('swagger');
  });

  it('lists every route in /openapi.json with request and response schemas', async () => {
    const doc = (await api(server, 'GET', '/openapi.json')).body;
    const paths = Object.keys(doc.paths);
    for (const p of [
      '/api/conversations',
      '/api/conversations/search',
      '/api/conversations/count',
      '/api/conversations/{conversation_id}',
      '/api/conversations/{conversation_id}/run',
      '/api/conversations/{conversation_id}/pause',
      '/api/conversations/{conversation_id}/interrupt',
      '/api/conversations/{conversation_id}/secrets',
      '/api/conversations/{conversation_id}/confirmation_policy',
      '/api/conversations/{conversation_id}/agent_final_response',
      '/api/conversations/{conversation_id}/events',
      '/api/conversations/{conversation_id}/events/search',
      '/api/conversations/{conversation_id}/events/count',
      '/api/conversations/{conversation_id}/events/{event_id}',
      '/api/conversations/{conversation_id}/events/respond_to_confirmation',
      '/health',
      '/ready',
      '/server_info',
    ]) {
      expect(paths).toContain(p);
    }
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const ok = op.responses?.['200'] ?? op.responses?.['201'];
        // A JSON (or, for files, binary) answer with its schema, or an explicit 204.
        const documented = op.responses?.['204'] !== undefined || Object.values<any>(ok?.content ?? {}).some((c) => Boolean(c.schema));
        expect({ route: `${method} ${path}`, documented }).toEqual({ route: `${method} ${path}`, documented: true });
        if (['post', 'patch'].includes(method) && op.requestBody) {
          // JSON, or multipart for an upload.
          expect(Object.values<any>(op.requestBody.content).every((c) => Boolean(c.schema))).toBe(true);
        }
      }
    }
    for (const id of ['StartConversationRequest', 'ConversationInfo', 'ConversationPage', 'Event', 'EventPage', 'SendMessageRequest']) {
      expect(doc.components.schemas[id]).toBeDefined();
    }
  });

  it('requires the key on every /api route (401 {"detail":"Unauthorized"}), before validating the body', async () => {
    const doc = (await api(server, 'GET', '/openapi.json')).body;
    const apiRoutes = routesOf(doc).filter((r) => r.path.startsWith('/api/'));
    expect(apiRoutes.length).toBeGreaterThan(15);
    for (const route of apiRoutes) {
      for (const key of [undefined, 'wrong-key', `${KEY}x`, KEY.slice(0, -1)]) {
        const res = await api(server, route.method, route.path, { key, rawBody: route.method === 'GET' ? undefined : '{not json' });
        expect({ route, key, status: res.status, body: res.body }).toEqual({ route, key, status: 401, body: { detail: 'Unauthorized' } });
      }
    }
    for (const path of PUBLIC) expect((await api(server, 'GET', path)).status).toBe(200);
  });

  it('accepts every configured key at once (rotation)', async () => {
    expect((await api(server, 'GET', '/api/conversations/count', { key: KEY })).status).toBe(200);
    expect((await api(server, 'GET', '/api/conversations/count', { key: ROTATED })).status).toBe(200);
  });

  it('scopes everything by tenant: another tenant sees 404, never 403', async () => {
    const db = server.app.get(Database);
    const { tenantId, key: tenantKey } = await createTenant(server);

    const mine = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key: KEY })).body.id;
    const theirs = (await api(server, 'POST', '/api/conversations', { body: startRequest(), key: tenantKey })).body.id;
    expect((await api(server, 'GET', `/api/conversations/${mine}`, { key: tenantKey })).status).toBe(404);
    expect((await api(server, 'GET', `/api/conversations/${theirs}`, { key: KEY })).status).toBe(404);
    expect((await api(server, 'GET', `/api/conversations/${mine}/events/search`, { key: tenantKey })).status).toBe(404);
    expect((await api(server, 'POST', `/api/conversations/${mine}/run`, { key: tenantKey })).status).toBe(404);
    expect((await api(server, 'GET', '/api/conversations/count', { key: tenantKey })).body).toBe(1);
    const batch = await api(server, 'GET', `/api/conversations?ids=${mine}&ids=${theirs}`, { key: tenantKey });
    expect(batch.body.map((c: any) => c?.id ?? null)).toEqual([null, theirs]);
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${mine}?session_api_key=${tenantKey}`);
    expect(await ws.waitClosed()).toBe(4004);
    // Another tenant's id on create: no conversation can be made under it (409, naming nothing of the other's).
    expect((await api(server, 'POST', '/api/conversations', { body: startRequest({ conversation_id: mine }), key: tenantKey })).status).toBe(409);

    await db.prisma.apiKey.updateMany({ where: { tenantId }, data: { revokedAt: new Date() } });
  });

  it('answers CORS for localhost, configured origins and the regex only', async () => {
    const preflight = (origin: string, path = '/api/conversations') =>
      fetch(`${server.url}${path}`, {
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-session-api-key,content-type' },
      });
    for (const origin of ['http://localhost:3001', 'http://127.0.0.1:5173', 'https://app.example.com', 'https://pr.preview.example.org']) {
      const res = await preflight(origin);
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe(origin);
      expect(res.headers.get('access-control-allow-credentials')).toBe('true');
      expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-session-api-key');
    }
    for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.io', 'https://x.preview.example.org.evil.io', 'null']) {
      const res = await preflight(origin);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
    const simple = await fetch(`${server.url}/health`, { headers: { Origin: 'https://app.example.com' } });
    expect(simple.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const workspace = await preflight('https://anything.example.net', `/api/conversations/${randomUUID()}/workspace/index.html`);
    expect(workspace.headers.get('access-control-allow-origin')).toBe('https://anything.example.net');
  });

  it('answers unknown paths with 404 {"detail":"Not Found"}', async () => {
    const res = await api(server, 'GET', '/no/such/route', { key: KEY });
    expect(res).toMatchObject({ status: 404, body: { detail: 'Not Found' } });
  });
});

describe('open server (no key configured)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('embedded');
  });
  afterAll(async () => {
    await server.close();
  });

  it('lets every request in as the default tenant, on REST and the socket', async () => {
    const created = await api(server, 'POST', '/api/conversations', { body: startRequest() });
    expect(created.status).toBe(201);
    expect((await api(server, 'GET', '/api/conversations/count', { key: 'anything' })).body).toBe(1);
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${created.body.id}`);
    const [first] = await ws.waitFor((f) => f.length >= 1);
    expect(first.key).toBe('full_state');
    ws.close();
  });
});

describe('readiness', () => {
  it('is 503 while the database is unreachable and the API says why', async () => {
    const server = await startServer('embedded', { DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none', OH_SESSION_API_KEYS_0: KEY }, undefined, {
      waitReady: false,
    });
    try {
      const ready = await api(server, 'GET', '/ready');
      expect(ready.status).toBe(503);
      expect(ready.body.status).toBe('initializing');
      expect((await api(server, 'GET', '/health')).status).toBe(200);
      const count = await api(server, 'GET', '/api/conversations/count', { key: KEY });
      expect(count.status).toBe(503);
      expect(typeof count.body.detail).toBe('string');
    } finally {
      await server.close();
    }
  });
});
