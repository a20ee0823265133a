import { Database } from '@berth/persistence';
import { until } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { api, createTenant, startRequest, STORAGES, useServer, userMessage } from './support/server';

const KEY = 'runtime-test-key';

/** Whether a host process is alive (a zombie, ended but not yet reaped, is not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe.each(STORAGES)("a conversation's runtime: GET …/runtime and POST …/runtime/reprovision (%s)", (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY }, KEY, { ownDatabase: true });
  const call = ctx.call;
  const sandboxRow = (id: string) => ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id } });
  /** The host processes of a sandbox's executor (the executor, and the init of its jail when isolated). */
  const processesOf = async (id: string) => {
    const handle = (await sandboxRow(id)).handle as { pid: number; init?: number };
    return [handle.pid, ...(handle.init ? [handle.init] : [])];
  };
  const inSandbox = async (sandboxId: string, command: string) => {
    const res = await call('POST', `/sandboxes/${sandboxId}/api/bash/execute_bash_command`, { command });
    expect(res.status).toBe(200);
    return String(res.body.stdout).trim();
  };

  it("replaces the conversation's own sandbox executor: new processes, old ones gone, workspace files kept", async () => {
    const created = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('reprovision me') }));
    const id = created.body.id;
    const sandboxId = created.body.sandbox_id;
    expect((await call('GET', `/api/conversations/${id}/runtime`)).body).toEqual({
      runtime_status: 'available',
      can_resume: true,
      runtime_error: null,
      sandbox_id: sandboxId,
      sandbox_kind: 'conversation',
      sandbox_status: 'running',
      driver: 'local',
    });
    await inSandbox(sandboxId, 'mkdir -p workspace/project && echo kept-across > workspace/project/notes.txt');
    // A process of the old executor's jail: it must end with it.
    await call('POST', `/sandboxes/${sandboxId}/api/bash/start_bash_command`, { command: 'sleep 600' });
    await until(async () => (await inSandbox(sandboxId, 'pgrep -f "sleep 60[0]" || echo none')) !== 'none', 'the sleep to run', 5000);
    const before = await processesOf(sandboxId);
    expect(before.every(alive)).toBe(true);

    const res = await call('POST', `/api/conversations/${id}/runtime/reprovision`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ runtime_status: 'available', can_resume: true, runtime_error: null, sandbox_id: sandboxId, sandbox_status: 'running' });
    const after = await processesOf(sandboxId);
    expect(after.every(alive)).toBe(true);
    expect(after.some((pid) => before.includes(pid))).toBe(false);
    await until(() => !before.some(alive), 'the old executor and its jail to end', 5000);
    expect(await inSandbox(sandboxId, 'cat workspace/project/notes.txt')).toBe('kept-across');
    expect(await inSandbox(sandboxId, 'pgrep -f "sleep 60[0]" || echo none')).toBe('none');
    // The conversation keeps its sandbox, and its row says so.
    expect((await call('GET', `/api/conversations/${id}`)).body.runtime_info).toMatchObject({ runtime_status: 'available', sandbox_id: sandboxId });
  });

  it('tells the truth about an executor that died: error, then reprovision brings one back', async () => {
    const created = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('kill my executor') }));
    const { id, sandbox_id: sandboxId } = created.body;
    const before = await processesOf(sandboxId);
    for (const pid of before) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const dead = (await call('GET', `/api/conversations/${id}/runtime`)).body;
    expect(dead).toMatchObject({ runtime_status: 'error', can_resume: true, sandbox_id: sandboxId, sandbox_status: 'running' });
    expect(dead.runtime_error.code).toBe('sandbox_unreachable');
    const res = await call('POST', `/api/conversations/${id}/runtime/reprovision`);
    expect(res.status).toBe(200);
    expect(res.body.runtime_status).toBe('available');
    expect((await processesOf(sandboxId)).every(alive)).toBe(true);
    expect(await inSandbox(sandboxId, 'echo back')).toBe('back');
  });

  it('gives a conversation without a sandbox one, and starts a stopped one', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    expect((await call('GET', `/api/conversations/${id}/runtime`)).body).toEqual({
      runtime_status: 'missing',
      can_resume: true,
      runtime_error: null,
      sandbox_id: null,
      sandbox_kind: null,
      sandbox_status: null,
      driver: 'local',
    });
    const made = await call('POST', `/api/conversations/${id}/runtime/reprovision`);
    expect(made.body).toMatchObject({ runtime_status: 'available', sandbox_kind: 'conversation', sandbox_status: 'running' });
    const sandboxId = made.body.sandbox_id;
    expect((await call('GET', `/api/conversations/${id}`)).body.sandbox_id).toBe(sandboxId);

    expect((await call('POST', `/api/sandboxes/${sandboxId}/pause`)).status).toBe(200);
    expect((await call('GET', `/api/conversations/${id}/runtime`)).body).toMatchObject({ runtime_status: 'missing', can_resume: true, sandbox_status: 'paused' });
    expect((await call('POST', `/api/conversations/${id}/runtime/reprovision`)).body).toMatchObject({ runtime_status: 'available', sandbox_status: 'running' });
    expect(await inSandbox(sandboxId, 'echo resumed')).toBe('resumed');
  });

  it('does not cut short a shared sandbox (the home) under the others using it', async () => {
    const root = (await call('GET', '/api/file/home')).body.home as string;
    const id = (await call('POST', '/api/conversations', startRequest({ workspace: { kind: 'LocalWorkspace', working_dir: `${root}/shared-project` } }))).body.id;
    const info = (await call('POST', `/api/conversations/${id}/runtime/reprovision`)).body;
    expect(info).toMatchObject({ runtime_status: 'available', sandbox_kind: 'home' });
    const before = await processesOf(info.sandbox_id);
    expect((await call('POST', `/api/conversations/${id}/runtime/reprovision`)).body.runtime_status).toBe('available');
    expect(await processesOf(info.sandbox_id)).toEqual(before);
    expect(before.every(alive)).toBe(true);
  });

  it("is the caller's tenant's only: another tenant's conversation is unknown, and nothing of it changes", async () => {
    const created = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('mine') }));
    const { id, sandbox_id: sandboxId } = created.body;
    const before = await processesOf(sandboxId);
    const other = await createTenant(ctx.server);
    for (const [method, path] of [
      ['GET', `/api/conversations/${id}/runtime`],
      ['POST', `/api/conversations/${id}/runtime/reprovision`],
    ]) {
      const foreign = await api(ctx.server, method, path, { key: other.key });
      const missing = await api(ctx.server, method, path.replace(id, randomUUID()), { key: other.key });
      expect(foreign.status).toBe(404);
      expect(missing.status).toBe(404);
      expect(JSON.stringify(foreign.body)).not.toContain(sandboxId);
    }
    expect(await processesOf(sandboxId)).toEqual(before);
    expect(before.every(alive)).toBe(true);
    expect((await api(ctx.server, 'GET', `/api/conversations/${id}/runtime`)).status).toBe(401);
  });
});
