import { DEFAULT_TENANT_ID } from '@berth/persistence';
import { LlmStub } from '@berth/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, eventually, killProcessesUnder, run, waitFor } from './support/processes';
import { api, SocketClient, userMessage, waitForStatus } from './support/server';

const KEY = 'logs-test-session-key-5d1f';
const LLM_KEY = 'sk-logs-test-llm-secret-93ab';
const SECRET_VALUE = 'logs-test-conversation-secret-77c2';

type Line = Record<string, any>;

/**
 * The built gateway (`npm start`) with its stdout piped, as a log collector reads it: JSON lines
 * only, an access line per request, the run's state changes, and no credential anywhere.
 */
describe('structured logs', () => {
  const llm = new LlmStub();
  let dataDir: string;
  let proc: ReturnType<typeof run>;
  let server: { url: string };

  const lines = (): Line[] =>
    proc
      .stdout()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line));
  const accessLines = (requestId: string) => lines().filter((l) => l.context === 'Access' && l.request_id === requestId);

  beforeAll(async () => {
    await llm.start();
    dataDir = mkdtempSync(join(tmpdir(), 'berth-logs-'));
    const port = await freePort();
    proc = run('dist/apps/gateway/src/main.js', ['--host', '127.0.0.1', '--port', String(port)], {
      BERTH_DATA_DIR: dataDir,
      OH_SESSION_API_KEYS_0: KEY,
      BERTH_WARM_POOL_SIZE: '0',
    });
    server = { url: `http://127.0.0.1:${port}` };
    await waitFor(`${server.url}/ready`, 200, 60_000);
  });
  afterAll(async () => {
    proc.child.kill('SIGTERM');
    await proc.exited;
    await llm.stop();
    killProcessesUnder(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('writes JSON lines only, says in a few lines what it runs on, and keeps route mapping out of info', async () => {
    const all = lines();
    expect(all.length).toBeGreaterThan(0);
    for (const line of all) expect(line).toMatchObject({ level: expect.any(Number), time: expect.any(Number), msg: expect.any(String) });
    expect(proc.stdout()).not.toMatch(/\u001b\[/);
    expect(all.some((l) => /Mapped \{/.test(l.msg))).toBe(false);
    expect(all.some((l) => l.context === 'InstanceLoader' || l.context === 'RoutesResolver')).toBe(false);

    const summary = all.filter((l) => l.context === 'Berth');
    expect(summary.map((l) => l.msg)).toEqual([
      `listening on ${server.url} (role all); API docs at ${server.url}/docs`,
      `storage: embedded PostgreSQL (PGlite) in ${join(dataDir, 'db')}`,
      'queue and event bus: in-process',
      'sandboxes: local driver, isolated by bubblewrap, network none',
      'webhooks: 0',
    ]);
    expect(summary[0]).toMatchObject({ level: 30, url: server.url, docs: `${server.url}/docs` });
    expect(summary[3]).toMatchObject({ sandbox_driver: 'local', isolation: 'bwrap' });
    // The whole start-up is a handful of lines, not one per route and module.
    expect(all.length).toBeLessThan(15);
  });

  it('logs one access line per request with its route, caller and conversation, never the key or a secret', async () => {
    const text = 'logs: finish at once';
    llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'Done.' } }] }]);
    const created = await api(server, 'POST', '/api/conversations', {
      key: KEY,
      headers: { 'x-request-id': 'logs-create-1', authorization: `Bearer ${SECRET_VALUE}`, cookie: `session=${SECRET_VALUE}` },
      body: {
        agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: LLM_KEY, base_url: llm.url, num_retries: 0 }, tools: [] },
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
        secrets: { LOGS_TEST_TOKEN: SECRET_VALUE },
        initial_message: userMessage(text),
        autotitle: false,
      },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    // A socket authenticated by its query key (as browsers do): opened and closed lines, the key in neither.
    const socket = new SocketClient(`${server.url.replace('http', 'ws')}/sockets/events/${id}?session_api_key=${KEY}&resend_mode=all`, { 'x-request-id': 'logs-socket-1' });
    await waitForStatus(server, KEY, id, ['finished', 'error'], 60_000);
    const got = await api(server, 'GET', `/api/conversations/${id}`, { key: KEY, headers: { 'x-request-id': 'logs-get-1' } });
    expect(got.status).toBe(200);
    socket.ws.close();
    const refused = await api(server, 'GET', '/api/conversations/search', { key: 'not-a-key', headers: { 'x-request-id': 'logs-refused-1' } });
    expect(refused.status).toBe(401);

    expect(await eventually(() => accessLines('logs-get-1').length > 0 && lines().some((l) => l.msg === 'socket closed'))).toBe(true);
    expect(accessLines('logs-create-1')).toEqual([
      expect.objectContaining({ level: 30, msg: 'request', method: 'POST', route: '/api/conversations', status: 201, request_id: 'logs-create-1', tenant_id: DEFAULT_TENANT_ID, key_id: 'env:0' }),
    ]);
    const [get] = accessLines('logs-get-1');
    expect(get).toMatchObject({ method: 'GET', route: '/api/conversations/:conversation_id', status: 200, tenant_id: DEFAULT_TENANT_ID, key_id: 'env:0', conversation_id: id });
    expect(get.duration_ms).toEqual(expect.any(Number));
    // Refused before any tenant is known: no caller fields.
    const [denied] = accessLines('logs-refused-1');
    expect(denied).toMatchObject({ route: '/api/conversations/search', status: 401 });
    expect(denied).not.toHaveProperty('tenant_id');

    const socketLines = lines().filter((l) => l.request_id === 'logs-socket-1');
    expect(socketLines.map((l) => l.msg)).toEqual(['socket opened', 'socket closed']);
    for (const line of socketLines) expect(line).toMatchObject({ context: 'Access', route: '/sockets/events/:conversation_id', conversation_id: id, tenant_id: DEFAULT_TENANT_ID, key_id: 'env:0' });
    expect(socketLines[1]).toMatchObject({ close_code: expect.any(Number), duration_ms: expect.any(Number) });

    const output = proc.output();
    for (const secret of [KEY, LLM_KEY, SECRET_VALUE]) expect({ secret, logged: output.includes(secret) }).toEqual({ secret, logged: false });
  });

  it('logs each state change of a run with its conversation, tenant and fence', async () => {
    const text = 'logs: a run to follow';
    llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'Followed.' } }] }]);
    const created = await api(server, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: LLM_KEY, base_url: llm.url, num_retries: 0 }, tools: [] },
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
        initial_message: userMessage(text),
        autotitle: false,
      },
    });
    const id = created.body.id as string;
    await waitForStatus(server, KEY, id, ['finished', 'error'], 60_000);
    const runLines = () => lines().filter((l) => l.conversation_id === id && l.context !== 'Access');
    expect(await eventually(() => runLines().some((l) => l.msg === 'run ended'))).toBe(true);
    const seen = runLines();
    expect(seen.map((l) => l.msg)).toEqual(['run started', 'run status', 'run ended']);
    for (const line of seen) expect(line).toMatchObject({ level: 30, tenant_id: DEFAULT_TENANT_ID, run_fence: seen[0].run_fence });
    expect(seen[0].run_fence).toEqual(expect.any(Number));
    expect(seen[1]).toMatchObject({ context: 'AgentRunner', transition: 'finish', status: 'finished' });
    expect(seen[2]).toMatchObject({ context: 'RunWorker', status: 'finished' });
  });

  it('keeps health probes at debug', async () => {
    expect((await api(server, 'GET', '/health', { headers: { 'x-request-id': 'logs-probe-1' } })).status).toBe(200);
    expect((await api(server, 'GET', '/api/conversations/count', { key: KEY, headers: { 'x-request-id': 'logs-count-1' } })).status).toBe(200);
    expect(await eventually(() => accessLines('logs-count-1').length === 1)).toBe(true);
    expect(accessLines('logs-probe-1')).toEqual([]);
  });
});
