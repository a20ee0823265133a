import { SandboxInfoSchema } from '@berth/contracts';
import { Database } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LocalSandboxDriver, SandboxDriver } from '@berth/sandbox';
import { eventually } from './support/processes';
import { api, createTenant, privateDatabase, SocketClient, startRequest, startServer, STORAGES, useServer } from './support/server';

const KEY = 'sandbox-key';

describe.each(STORAGES)('sandboxes: runtime API and the /sandboxes/{id} surface (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY }, KEY);
  const call = ctx.call;

  it('creates a running sandbox, gets, lists, pauses, resumes and deletes it', async () => {
    const created = await call('POST', '/api/sandboxes', { env: { GREETING: 'hi', TOKEN: 'secret-value' }, idle_timeout: 600, ttl: 3600 });
    expect(created.status).toBe(201);
    const info = SandboxInfoSchema.parse(created.body);
    expect(info).toMatchObject({ status: 'running', driver: 'local', idle_timeout: 600, ttl: 3600, env: ['GREETING', 'TOKEN'] });
    expect(info.url).toBe(`${ctx.server.url}/sandboxes/${info.id}`);
    expect(JSON.stringify(created.body)).not.toContain('secret-value');
    const root = join(ctx.server.dataDir, 'sandboxes', info.id);
    expect(existsSync(root)).toBe(true);
    // The token is stored encrypted.
    const row = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id: info.id } });
    expect(String((row.handle as { token: string }).token)).toMatch(/^gAAAAA/);
    // The sandbox's variables reach its shells; the executor's own do not.
    const echoed = await call('POST', `/sandboxes/${info.id}/api/bash/execute_bash_command`, { command: 'echo "$GREETING/$TOKEN/${BERTH_SANDBOX_TOKEN:-none}"' });
    expect(echoed.body.stdout).toContain('hi/secret-value/none');

    expect((await call('GET', `/api/sandboxes/${info.id}`)).body.id).toBe(info.id);
    const second = (await call('POST', '/api/sandboxes', {})).body;
    const page = await call('GET', '/api/sandboxes?limit=1');
    expect(page.body.items.map((s: { id: string }) => s.id)).toEqual([second.id]);
    const next = await call('GET', `/api/sandboxes?limit=1&page_id=${page.body.next_page_id}`);
    expect(next.body.items[0].id).toBe(info.id);

    const paused = await call('POST', `/api/sandboxes/${info.id}/pause`);
    expect(paused.body.status).toBe('paused');
    const pid = (row.handle as { pid: number }).pid;
    expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(root)).toBe(true);
    expect((await call('POST', `/api/sandboxes/${info.id}/resume`)).body.status).toBe('running');
    expect((await api(ctx.server, 'GET', `/sandboxes/${info.id}/health`)).body).toEqual({ status: 'ok' });

    expect((await call('DELETE', `/api/sandboxes/${info.id}`)).body).toEqual({ success: true });
    expect((await call('GET', `/api/sandboxes/${info.id}`)).status).toBe(404);
    expect(existsSync(root)).toBe(false);
    await call('DELETE', `/api/sandboxes/${second.id}`);
  });

  it('records desired and observed state, and a failed start as error with its reason, on the sandbox and its conversations', async () => {
    const info = (await call('POST', '/api/sandboxes', {})).body;
    expect(info).toMatchObject({ status: 'running', desired_state: 'running', status_reason: null });
    const conversation = (await call('POST', '/api/conversations', { ...startRequest(), sandbox_id: info.id })).body.id;
    expect((await call('POST', `/api/sandboxes/${info.id}/pause`)).body).toMatchObject({ status: 'paused', desired_state: 'stopped' });
    const before = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id: info.id } });

    // Its folder gone under it: the next start fails, and says why.
    rmSync(join(ctx.server.dataDir, 'sandboxes', info.id), { recursive: true, force: true });
    expect((await call('POST', `/api/sandboxes/${info.id}/resume`)).status).toBe(503);
    const failed = SandboxInfoSchema.parse((await call('GET', `/api/sandboxes/${info.id}`)).body);
    expect(failed).toMatchObject({ status: 'error', desired_state: 'running', status_reason: `sandbox ${info.id} has no folder (destroyed?)` });
    const after = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id: info.id } });
    // Each change was a compare-and-set on the version: desired running, then observed error.
    expect(after.stateVersion).toBe(before.stateVersion + 2);
    const runtime = (await call('GET', `/api/conversations/${conversation}`)).body.runtime_info;
    expect(runtime).toMatchObject({ runtime_status: 'error', sandbox_status: 'error' });
    expect(runtime.runtime_error.message).toContain('has no folder (destroyed?)');
    await call('DELETE', `/api/sandboxes/${info.id}`);
  });

  it('validates the request and answers 404 for unknown ids', async () => {
    expect((await call('POST', '/api/sandboxes', { env: { 'BAD-NAME': 'x' } })).status).toBe(422);
    expect((await call('POST', '/api/sandboxes', { idle_timeout: 1 })).status).toBe(422);
    expect((await call('POST', '/api/sandboxes', { unknown: true })).status).toBe(422);
    expect((await call('GET', '/api/sandboxes?limit=500')).status).toBe(422);
    expect((await call('GET', `/api/sandboxes/${randomUUID()}`)).status).toBe(404);
    expect((await call('GET', '/api/sandboxes/not-a-uuid')).status).toBe(422);
    expect((await call('POST', `/api/sandboxes/${randomUUID()}/pause`)).status).toBe(404);
  });

  it('limits /sandboxes/{id}/api/conversations to that sandbox, and sockets too', async () => {
    const a = (await call('POST', '/api/sandboxes', {})).body.id;
    const b = (await call('POST', '/api/sandboxes', {})).body.id;
    const inA = await call('POST', `/sandboxes/${a}/api/conversations`, startRequest());
    expect(inA.status).toBe(201);
    expect(inA.body.sandbox_id).toBe(a);
    const attached = await call('POST', '/api/conversations', startRequest({ sandbox_id: b }));
    expect(attached.body.sandbox_id).toBe(b);
    expect((await call('POST', '/api/conversations', startRequest({ sandbox_id: randomUUID() }))).status).toBe(404);

    const searchA = await call('GET', `/sandboxes/${a}/api/conversations/search`);
    expect(searchA.body.items.map((c: { id: string }) => c.id)).toEqual([inA.body.id]);
    expect((await call('GET', `/sandboxes/${a}/api/conversations/count`)).body).toBe(1);
    expect((await call('GET', `/sandboxes/${b}/api/conversations/${inA.body.id}`)).status).toBe(404);
    expect((await call('GET', `/api/conversations/${inA.body.id}`)).status).toBe(200);
    expect((await call('GET', `/sandboxes/${a}/server_info`)).body.title).toBe('OpenHands Agent Server');

    const ws = new SocketClient(`${ctx.server.wsUrl}/sandboxes/${a}/sockets/events/${inA.body.id}?session_api_key=${KEY}`);
    expect((await ws.waitFor((f) => f.length >= 1))[0].key).toBe('full_state');
    ws.close();
    const wrong = new SocketClient(`${ctx.server.wsUrl}/sandboxes/${b}/sockets/events/${inA.body.id}?session_api_key=${KEY}`);
    expect(await wrong.waitClosed()).toBe(4004);

    // Deleting a sandbox keeps its conversations (their sandbox_id becomes null).
    await call('DELETE', `/api/sandboxes/${a}`);
    expect((await call('GET', `/api/conversations/${inA.body.id}`)).body.sandbox_id).toBeNull();
    await call('DELETE', `/api/sandboxes/${b}`);
  });

  it("hides another tenant's sandboxes (404, never 403)", async () => {
    const otherKey = (await createTenant(ctx.server)).key;
    const mine = (await call('POST', '/api/sandboxes', {})).body.id;
    expect((await api(ctx.server, 'GET', `/api/sandboxes/${mine}`, { key: otherKey })).status).toBe(404);
    expect((await api(ctx.server, 'GET', `/sandboxes/${mine}/api/conversations/search`, { key: otherKey })).status).toBe(404);
    expect((await api(ctx.server, 'DELETE', `/api/sandboxes/${mine}`, { key: otherKey })).status).toBe(404);
    expect((await api(ctx.server, 'GET', '/api/sandboxes', { key: otherKey })).body.items).toEqual([]);
    await call('DELETE', `/api/sandboxes/${mine}`);
  });
});

describe.each(STORAGES)('sandboxes from the warm pool (isolated, %s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_WARM_POOL_SIZE: '2', BERTH_WARM_POOL_FILL: 'start' }, KEY);

  it('get an executor started before they were asked for, for their id, and work as any other', async () => {
    const driver = ctx.server.app.get(SandboxDriver) as LocalSandboxDriver;
    await eventually(() => driver.warmExecutors === 2);
    const created = await ctx.call('POST', '/api/sandboxes', { env: { GREETING: 'from-the-pool' } });
    expect(created.status).toBe(201);
    const row = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id: created.body.id } });
    const { pid, root } = row.handle as { pid: number; root: string };
    // Dormant executors are started with BERTH_EXECUTOR_DORMANT; a cold start never is.
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain('BERTH_EXECUTOR_DORMANT=1');
    // It was started for this sandbox: its folder, in its jail, as the uid that owns the folder.
    expect(root).toBe(join(ctx.server.dataDir, 'sandboxes', created.body.id));
    expect(environ).toContain(`BERTH_SANDBOX_ROOT=${root}`);
    const hostUid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    expect(hostUid).not.toBe(process.getuid!());
    expect(statSync(root).uid).toBe(hostUid);
    const echoed = await ctx.call('POST', `/sandboxes/${created.body.id}/api/bash/execute_bash_command`, { command: 'echo "$GREETING" && pwd && git status --short | wc -l' });
    expect(echoed.body.stdout).toContain('from-the-pool');
    expect(echoed.body.stdout).toContain(root);
    expect(echoed.body.exit_code).toBe(0);
    expect((await ctx.call('DELETE', `/api/sandboxes/${created.body.id}`)).status).toBe(200);
    expect(existsSync(root)).toBe(false);
  });
});

describe('the warm pool by default (BERTH_WARM_POOL_FILL=demand)', () => {
  const ctx = useServer('embedded', { OH_SESSION_API_KEYS_0: KEY, BERTH_WARM_POOL_SIZE: '2' }, KEY);

  it('keeps no executor while no sandbox was wanted; fills after the first, which the next one uses', async () => {
    const driver = ctx.server.app.get(SandboxDriver) as LocalSandboxDriver;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(driver.warmExecutors).toBe(0);
    const first = await ctx.call('POST', '/api/sandboxes', {});
    expect(first.status).toBe(201);
    await eventually(() => driver.warmExecutors === 2);
    const second = await ctx.call('POST', '/api/sandboxes', {});
    expect(second.status).toBe(201);
    const environOf = async (id: string) => {
      const row = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id } });
      return readFileSync(`/proc/${(row.handle as { pid: number }).pid}/environ`, 'utf8').split('\0');
    };
    expect(await environOf(first.body.id)).not.toContain('BERTH_EXECUTOR_DORMANT=1');
    expect(await environOf(second.body.id)).toContain('BERTH_EXECUTOR_DORMANT=1');
    for (const id of [first.body.id, second.body.id]) expect((await ctx.call('DELETE', `/api/sandboxes/${id}`)).status).toBe(200);
  });
});

describe('a sandbox whose stored handle another data dir made (postgres)', () => {
  it('starts afresh in this server\'s data dir instead of failing: the default tenant\'s home after a move', async () => {
    const database = await privateDatabase('moved');
    try {
      const first = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, DATABASE_URL: database.url });
      const before = await api(first, 'GET', '/api/file/home', { key: KEY });
      expect(before.status).toBe(200);
      await first.close();
      const second = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, DATABASE_URL: database.url });
      try {
        const after = await api(second, 'GET', '/api/file/home', { key: KEY });
        expect(after.status).toBe(200);
        expect(after.body.home.startsWith(join(second.dataDir, 'sandboxes'))).toBe(true);
        const ran = await api(second, 'POST', '/api/bash/execute_bash_command', { body: { command: 'echo moved-$((2*4))' }, key: KEY });
        expect(ran.body.stdout).toContain('moved-8');
      } finally {
        await second.close();
      }
    } finally {
      await database.drop();
    }
  });
});
