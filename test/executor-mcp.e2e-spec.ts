import { randomUUID } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mcpStdioServer } from '@berth/testing';
import { alive, eventually, RunningExecutor, startExecutor } from './support/processes';

/**
 * The executor's MCP routes (`POST /api/mcp/tools`, `POST /api/mcp/call` of the executor protocol),
 * on the built executor over its real HTTP API: it starts the stdio fixture as its own child, keeps it
 * between calls, stops it with the conversation's session, and answers a server's failures 502 / 504.
 */
const TOKEN = 'executor-mcp-token';

type Json = Record<string, any>;

describe('executor: MCP servers', () => {
  let root: string;
  let executor: RunningExecutor;
  const conversation = randomUUID();
  const post = async (path: string, body: unknown, token = TOKEN): Promise<{ status: number; body: Json }> => {
    const res = await fetch(`http://127.0.0.1:${executor.port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-sandbox-token': token }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const fixture = (env: Record<string, string> = {}) => {
    const { command, args } = mcpStdioServer(env);
    return { transport: 'stdio', command, args, env };
  };
  const target = (launch: Json = fixture()) => ({ conversation_id: conversation, working_dir: join(root, 'project'), server: 'fx', launch, timeout_ms: 20_000 });
  const call = (tool: string, args: Json, extra: Json = {}) => post('/api/mcp/call', { ...target(), tool, arguments: args, ...extra });
  const whereami = async () => JSON.parse((await call('whereami', {})).body.result.content[0].text) as { pid: number; cwd: string };

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'berth-executor-mcp-')));
    executor = await startExecutor(root, TOKEN);
  });
  afterAll(async () => {
    await executor.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('starts the server in the working dir, lists its tools and calls them on the same process', async () => {
    const listed = await post('/api/mcp/tools', target());
    expect(listed.status).toBe(200);
    expect(listed.body.tools.map((t: Json) => t.name)).toEqual(['whereami', 'echo', 'sleep', 'crash']);
    const echoed = await call('echo', { text: 'hi' });
    expect(echoed).toEqual({ status: 200, body: { result: { content: [{ type: 'text', text: 'hi' }], isError: false } } });
    const first = await whereami();
    expect(first.cwd).toBe(join(root, 'project'));
    expect((await whereami()).pid).toBe(first.pid);
  });

  it('needs the sandbox token and a valid body', async () => {
    expect((await post('/api/mcp/tools', target(), 'wrong')).status).toBe(401);
    const bad = await post('/api/mcp/call', { ...target(), tool: 'echo', timeout_ms: 0 });
    expect(bad.status).toBe(422);
    // A server starts in the working dir, which must be inside the sandbox.
    expect((await post('/api/mcp/tools', { ...target(), server: 'elsewhere', working_dir: '/etc' })).status).toBe(422);
  });

  it('keeps the sandbox active during a long call', async () => {
    const before = Date.now();
    const slow = call('sleep', { ms: 2500 });
    await new Promise((r) => setTimeout(r, 1500));
    const activity = (await (await fetch(`http://127.0.0.1:${executor.port}/api/activity`, { headers: { 'x-sandbox-token': TOKEN } })).json()) as Json;
    expect(new Date(activity.last_activity_at).getTime()).toBeGreaterThanOrEqual(before + 1000);
    expect((await slow).status).toBe(200);
  });

  it('answers a call that outlives its timeout 504, a crash and a server that cannot start 502, and starts a crashed server again', async () => {
    const late = await call('sleep', { ms: 5000 }, { timeout_ms: 500 });
    expect(late).toEqual({ status: 504, body: { detail: "no answer from MCP tool 'sleep' within 0.5 seconds" } });
    const crashed = await call('crash', {});
    expect(crashed.status).toBe(502);
    expect(crashed.body.detail).toMatch(/^the MCP server exited \(code 7\)/);
    expect((await call('echo', { text: 'again' })).body.result.content[0].text).toBe('again');
    const missing = await post('/api/mcp/tools', { ...target({ transport: 'stdio', command: '/no/such/server', args: [] }), server: 'missing' });
    expect(missing).toEqual({ status: 502, body: { detail: 'the MCP server failed its handshake: command not found: /no/such/server' } });
  });

  it('stops the conversation\'s servers with its session', async () => {
    const { pid } = await whereami();
    expect(alive(pid)).toBe(true);
    expect((await post(`/api/sessions/${conversation}/close`, {})).status).toBe(200);
    expect(await eventually(() => !alive(pid))).toBe(true);
  });
});
