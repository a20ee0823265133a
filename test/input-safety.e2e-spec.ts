import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { api, createTenant, SocketClient, startRequest, startServer, STORAGES, TestServer, userMessage } from './support/server';

/** A request with its target sent as written (fetch resolves `..` and `%2e%2e` before sending). */
function rawRequest(server: TestServer, method: string, target: string, key: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'x-session-api-key': key };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    const req = httpRequest(`${server.url}${target}`, { method, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

/**
 * Hostile input at the edge: paths that a URL parser would rewrite into the executor's internal
 * routes, NUL characters and deep nesting (which PostgreSQL and the services choked on, answering
 * 500 with database text), and secrets echoed by validation errors.
 */
describe.each(STORAGES)('input safety (%s)', (storage) => {
  let server: TestServer;
  let key: string;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key });

  beforeAll(async () => {
    server = await startServer(storage);
    ({ key } = await createTenant(server));
  });
  afterAll(async () => {
    await server.close();
  });

  it("never forwards a workspace path with dot segments or encoded separators (the executor's internal routes stay out of reach)", async () => {
    const sandbox = (await call('POST', '/api/sandboxes', {})).body;
    const prefix = `/sandboxes/${sandbox.id}`;
    expect((await call('GET', `${prefix}/api/bash/bash_events/search`)).status).toBe(200);
    const execute = JSON.stringify({ conversation_id: randomUUID(), working_dir: '/', tool: 'terminal', action: { command: 'id' } });
    for (const target of [
      `${prefix}/api/bash/%2e%2e/tools/execute`,
      `${prefix}/api/bash/%2E%2e/tools/execute`,
      `${prefix}/api/file/..%2ftools/execute`,
      `${prefix}/api/git/%2e%2e%2f%2e%2e/api/tools/execute`,
      `${prefix}/api/bash/..%5ctools/execute`,
      `${prefix}/api/bash/%2e%2e/sessions/${randomUUID()}/close`,
      `${prefix}/api/bash/%2e%2e/init`,
      `${prefix}/api/file/nothing`,
      `/api/bash/%2e%2e/tools/execute`,
    ]) {
      const res = await rawRequest(server, 'POST', target, key, execute);
      expect([target, res.status, JSON.parse(res.text)]).toEqual([target, 404, { detail: 'Not Found' }]);
    }
    expect((await rawRequest(server, 'GET', `${prefix}/api/bash/%2e%2e/activity`, key)).status).toBe(404);
    // A NUL in the path is refused before any route looks at it.
    expect((await rawRequest(server, 'GET', `${prefix}/api/file/download%00`, key)).status).toBe(422);
    await call('DELETE', `/api/sandboxes/${sandbox.id}`);
  });

  it.each([
    ['a title', { title: 'bad\u0000title' }],
    ['a tag', { tags: { team: 'a\u0000b' } }],
    ['a secret', { secrets: { DB_PASS: 'x\u0000y' } }],
    ['working_dir', { workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/a\u0000b' } }],
    ['a key', { tags: { 'a\u0000': 'b' } }],
  ])('answers 422 to a NUL character in %s, without echoing it', async (_what, extra) => {
    const res = await call('POST', '/api/conversations', startRequest(extra));
    expect(res.status).toBe(422);
    expect(res.body.detail).toEqual([expect.objectContaining({ type: 'value_error', loc: expect.arrayContaining(['body']), msg: expect.stringContaining('NUL') })]);
    expect(JSON.stringify(res.body)).not.toContain('\\u0000');
    expect((await call('GET', '/api/conversations/count')).body).toBe(0);
  });

  it('answers 422 to a NUL in message text, settings, a query or a path parameter, and to JSON nested 5,000 deep', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    const message = await call('POST', `/api/conversations/${id}/events`, userMessage('hi\u0000there'));
    expect(message.status).toBe(422);
    const settings = await call('PATCH', '/api/settings', { llm_model: 'a\u0000' });
    expect(settings).toMatchObject({ status: 422, body: { detail: [{ msg: expect.stringContaining('NUL') }] } });
    const query = await call('GET', '/api/conversations/search?title__contains=%00');
    expect(query).toMatchObject({ status: 422, body: { detail: [{ type: 'value_error', loc: ['query', 'title__contains'] }] } });
    expect((await call('GET', `/api/conversations/${id}%00`)).status).toBe(422);
    const deepText = `${JSON.stringify(startRequest()).slice(0, -1)},"tags":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`;
    const deep = await api(server, 'POST', '/api/conversations', { rawBody: deepText, key });
    expect(deep).toMatchObject({ status: 422, body: { detail: [{ type: 'value_error', loc: ['body'], msg: expect.stringContaining('nested deeper than') }] } });
    // Nesting a real request needs stays accepted.
    expect((await call('POST', '/api/conversations', startRequest({ future_option: nested(20) }))).status).toBe(201);
    // The tenant's path-routed workspace calls still answer.
    expect((await call('GET', '/api/file/home')).status).toBe(200);
  });

  it('never echoes secrets in a 422, wherever they sit in the body, nor in a JSON syntax error', async () => {
    const secret = 'db-pass-never-echoed';
    for (const body of [
      { secrets: { DB_PASS: secret } },
      { ...startRequest(), secrets: { DB_PASS: 42, OTHER: secret } },
      { ...startRequest(), agent: { ...startRequest().agent, llm: { model: 5, api_key: secret } } },
      { secrets: { DB_PASS: { value: secret } } },
    ]) {
      const res = await call('POST', '/api/conversations', body);
      expect(res.status).toBe(422);
      expect(JSON.stringify(res.body)).not.toContain(secret);
    }
    const malformed = await api(server, 'POST', '/api/conversations', { rawBody: `{"secrets": {"DB_PASS": "${secret}"}`, key });
    expect(malformed.status).toBe(422);
    expect(JSON.stringify(malformed.body)).not.toContain(secret);
    const badToken = await api(server, 'POST', '/api/conversations', { rawBody: `{"secrets": ${secret}}`, key });
    expect(badToken.status).toBe(422);
    expect(JSON.stringify(badToken.body)).not.toContain('db-pass');
  });

  it('the events socket refuses a NUL in a message frame or its query, saying nothing of the database', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${key}`);
    await ws.waitFor((f) => f.length >= 1);
    ws.send({ role: 'user', content: [{ type: 'text', text: 'a\u0000b' }] });
    ws.send(`{"role": "user", "secret": oops-${key}}`);
    const frames = await ws.waitFor((f) => f.filter((e) => e.kind === 'ServerErrorEvent').length >= 2);
    const errors = frames.filter((e) => e.kind === 'ServerErrorEvent');
    expect(errors.map((e) => e.code)).toEqual(['ValidationError', 'JSONDecodeError']);
    expect(errors[0].detail).toContain('NUL');
    expect(JSON.stringify(errors)).not.toMatch(/prisma|invocation|oops/i);
    ws.close();
    const nulQuery = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${key}&after_event_id=%00`);
    expect(await nulQuery.waitClosed()).toBe(1008);
  });
});
