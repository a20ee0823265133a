import { until } from '@berth/testing';
import { Database, DEFAULT_TENANT_ID } from '@berth/persistence';
import { SandboxReaper } from '@berth/sandbox';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { api, createTenant, SocketClient, STORAGES, useServer } from './support/server';

const KEY = 'workspace-key';

/**
 * The OpenHands SDK's remote Workspace, call for call (contract §9, §7.1): pointed at
 * `http://host/sandboxes/<id>` it must work unchanged.
 */
class PythonStyleWorkspace {
  constructor(
    private readonly host: string,
    private readonly key: string,
  ) {}

  private headers(extra: Record<string, string> = {}) {
    return { 'X-Session-API-Key': this.key, ...extra };
  }

  async alive(): Promise<boolean> {
    return (await fetch(`${this.host}/health`)).status === 200;
  }

  async serverInfo(): Promise<any> {
    return (await fetch(`${this.host}/server_info`, { headers: this.headers() })).json();
  }

  async upload(path: string, content: Buffer, name = 'file.bin'): Promise<Response> {
    const form = new FormData();
    form.append('file', new Blob([content]), name);
    return fetch(`${this.host}/api/file/upload?path=${encodeURIComponent(path)}`, { method: 'POST', headers: this.headers(), body: form });
  }

  async download(path: string): Promise<Response> {
    return fetch(`${this.host}/api/file/download?path=${encodeURIComponent(path)}`, { headers: this.headers() });
  }

  /** RemoteWorkspace.execute_command: start, then poll BashOutput events until one has an exit code. */
  async executeCommand(command: string, cwd?: string, timeout = 30): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const started = await fetch(`${this.host}/api/bash/start_bash_command`, {
      method: 'POST',
      headers: this.headers({ 'content-type': 'application/json' }),
      body: JSON.stringify({ command, timeout, ...(cwd ? { cwd } : {}) }),
    });
    if (started.status !== 200) throw new Error(`start_bash_command: ${started.status} ${await started.text()}`);
    const { id } = (await started.json()) as { id: string };
    let stdout = '';
    let stderr = '';
    let lastOrder = -1;
    const deadline = Date.now() + (timeout + 10) * 1000;
    while (Date.now() < deadline) {
      const query = new URLSearchParams({ command_id__eq: id, sort_order: 'TIMESTAMP', limit: '100', kind__eq: 'BashOutput' });
      if (lastOrder >= 0) query.set('order__gt', String(lastOrder));
      const page = (await (await fetch(`${this.host}/api/bash/bash_events/search?${query}`, { headers: this.headers() })).json()) as { items: any[] };
      for (const item of page.items) {
        stdout += item.stdout ?? '';
        stderr += item.stderr ?? '';
        lastOrder = Math.max(lastOrder, item.order);
        if (item.exit_code !== null && item.exit_code !== undefined) return { exitCode: item.exit_code, stdout, stderr };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('command did not finish');
  }

  async gitChanges(path: string): Promise<any> {
    return (await fetch(`${this.host}/api/git/changes?path=${encodeURIComponent(path)}`, { headers: this.headers() })).json();
  }

  async gitDiff(path: string): Promise<any> {
    return (await fetch(`${this.host}/api/git/diff?path=${encodeURIComponent(path)}`, { headers: this.headers() })).json();
  }
}

describe.each(STORAGES)('sandbox workspace through the gateway (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY }, KEY);

  it('serves the OpenHands remote Workspace call sequence under /sandboxes/{id}', async () => {
    const sandbox = (await ctx.call('POST', '/api/sandboxes', {})).body;
    const ws = new PythonStyleWorkspace(sandbox.url, KEY);
    expect(await ws.alive()).toBe(true);
    expect((await ws.serverInfo()).title).toBe('OpenHands Agent Server');

    const home = (await ctx.call('GET', `/sandboxes/${sandbox.id}/api/file/home`)).body.home as string;
    const project = `${home}/project`;
    const payload = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    expect((await ws.upload(`${project}/data.bin`, payload)).status).toBe(200);
    const downloaded = await ws.download(`${project}/data.bin`);
    expect(downloaded.status).toBe(200);
    expect(downloaded.headers.get('content-disposition')).toContain('data.bin');
    expect(Buffer.from(await downloaded.arrayBuffer()).equals(payload)).toBe(true);

    const result = await ws.executeCommand('git init -q . && echo hello > a.txt && ls && echo oops >&2', project);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('data.bin');
    expect(result.stderr).toContain('oops');

    const changes = (await ws.gitChanges(project)) as { status: string; path: string }[];
    expect(changes.map((c) => c.path).sort()).toEqual(['a.txt', 'data.bin']);
    expect(changes.every((c) => c.status === 'ADDED')).toBe(true);
    const diff = await ws.gitDiff(`${project}/a.txt`);
    expect(diff.original).toBe('');
    expect(String(diff.modified).trimEnd()).toBe('hello');
    await ctx.call('DELETE', `/api/sandboxes/${sandbox.id}`);
  });

  it('refuses paths outside the sandbox and needs the key', async () => {
    const sandbox = (await ctx.call('POST', '/api/sandboxes', {})).body;
    const outside = await api(ctx.server, 'GET', `/sandboxes/${sandbox.id}/api/file/download?path=/etc/passwd`, { key: KEY });
    expect(outside.status).toBeGreaterThanOrEqual(400);
    expect(outside.status).toBeLessThan(500);
    expect((await api(ctx.server, 'GET', `/sandboxes/${sandbox.id}/api/file/home`)).status).toBe(401);
    expect((await api(ctx.server, 'GET', `/sandboxes/${randomUUID()}/api/file/home`, { key: KEY })).status).toBe(404);
    await ctx.call('DELETE', `/api/sandboxes/${sandbox.id}`);
  });

  it('resumes a paused sandbox on the next call that needs it', async () => {
    const sandbox = (await ctx.call('POST', '/api/sandboxes', {})).body;
    await ctx.call('POST', `/api/sandboxes/${sandbox.id}/pause`);
    const home = await ctx.call('GET', `/sandboxes/${sandbox.id}/api/file/home`);
    expect(home.status).toBe(200);
    expect((await ctx.call('GET', `/api/sandboxes/${sandbox.id}`)).body.status).toBe('running');
    await ctx.call('DELETE', `/api/sandboxes/${sandbox.id}`);
  });
});

describe.each(STORAGES)('top-level workspace routes, routed by path (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY }, KEY);
  const top = new PythonStyleWorkspace('', KEY);

  beforeAll(() => {
    (top as unknown as { host: string }).host = ctx.server.url;
  });

  it("go to the tenant's home sandbox, where a conversation made under the home works too", async () => {
    const home = await ctx.call('GET', '/api/file/home');
    expect(home.status).toBe(200);
    expect(home.body.home).toContain('sandboxes');
    const workingDir = `${home.body.home}/workspace/project/${randomUUID().replace(/-/g, '')}`;
    const created = await ctx.call('POST', '/api/conversations', {
      agent: { kind: 'Agent', llm: { model: 'm' } },
      workspace: { kind: 'LocalWorkspace', working_dir: workingDir },
    });
    expect(created.status).toBe(201);
    const homeSandbox = created.body.sandbox_id;
    expect(homeSandbox).toEqual(expect.any(String));

    const ran = await ctx.call('POST', '/api/bash/execute_bash_command', { command: 'pwd && echo made > made.txt', cwd: workingDir });
    expect(ran.status).toBe(200);
    expect(ran.body.stdout).toContain(workingDir);
    expect(await (await top.download(`${workingDir}/made.txt`)).text()).toBe('made\n');
    expect((await top.upload(`${workingDir}/up.txt`, Buffer.from('up'))).status).toBe(200);
    const changes = await top.gitChanges(workingDir);
    expect(changes.map((c: { path: string }) => c.path).sort()).toEqual(['made.txt', 'up.txt']);
    // The same files through the sandbox prefix: one machine.
    const viaPrefix = await fetch(`${ctx.server.url}/sandboxes/${homeSandbox}/api/file/download?path=${encodeURIComponent(`${workingDir}/up.txt`)}`, { headers: { 'X-Session-API-Key': KEY } });
    expect(await viaPrefix.text()).toBe('up');
  });

  it("go to a conversation's own sandbox when the path lies in its working dir, translated to where the sandbox keeps it", async () => {
    const workingDir = `/srv/${randomUUID()}`;
    const created = await ctx.call('POST', '/api/conversations', {
      agent: { kind: 'Agent', llm: { model: 'm' } },
      workspace: { kind: 'LocalWorkspace', working_dir: workingDir },
    });
    const id = created.body.id;
    expect((await top.upload(`${workingDir}/notes/a.txt`, Buffer.from('in the conversation sandbox'))).status).toBe(200);
    // Its own sandbox, made on first use with an id of its own (never the conversation's).
    const sandbox = (await ctx.call('GET', `/api/conversations/${id}`)).body.sandbox_id;
    expect(sandbox).toEqual(expect.any(String));
    expect(sandbox).not.toBe(id);
    expect(existsSync(join(ctx.server.dataDir, 'sandboxes', sandbox, workingDir, 'notes', 'a.txt'))).toBe(true);
    expect(await (await top.download(`${workingDir}/notes/a.txt`)).text()).toBe('in the conversation sandbox');
    const ran = await ctx.call('POST', '/api/bash/execute_bash_command', { command: 'cat notes/a.txt', cwd: workingDir });
    expect(ran.body.stdout).toContain('in the conversation sandbox');
  });

  it('serve the working dir as static files, with the workspace session cookie as the key', async () => {
    const session = await fetch(`${ctx.server.url}/api/auth/workspace-session`, { method: 'POST', headers: { 'X-Session-API-Key': KEY } });
    expect(session.status).toBe(204);
    const setCookie = session.headers.get('set-cookie') as string;
    expect(setCookie).toBe(`oh_workspace_session_key=${KEY}; Path=/api/conversations; HttpOnly; SameSite=None; Max-Age=315360000; Secure; Partitioned`);
    const cookie = { cookie: setCookie.split(';')[0] };

    const home = (await ctx.call('GET', '/api/file/home')).body.home;
    const workingDir = `${home}/site-${randomUUID()}`;
    const id = (await ctx.call('POST', '/api/conversations', { agent: { kind: 'Agent', llm: { model: 'm' } }, workspace: { working_dir: workingDir } })).body.id;
    await top.upload(`${workingDir}/index.html`, Buffer.from('<h1>hi</h1>'));
    await top.upload(`${workingDir}/app.js`, Buffer.from('console.log(1)'));
    await top.upload(`${workingDir}/empty/readme.txt`, Buffer.from('no index here'));
    const base = `${ctx.server.url}/api/conversations/${id}/workspace`;

    const index = await fetch(`${base}/`, { headers: cookie });
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('content-disposition')).toBeNull();
    expect(await index.text()).toBe('<h1>hi</h1>');
    const script = await fetch(`${base}/app.js`, { headers: cookie });
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await script.text()).toBe('console.log(1)');
    expect((await fetch(`${base}/app.js`, { headers: { 'X-Session-API-Key': KEY } })).status).toBe(200);

    expect((await fetch(`${base}/missing.css`, { headers: cookie })).status).toBe(404);
    const noIndex = await fetch(`${base}/empty`, { headers: cookie });
    expect(noIndex.status).toBe(404);
    expect(((await noIndex.json()) as { detail: string }).detail).toBe('No index.html in directory');
    const escape = await fetch(`${base}/..%2F..%2Fetc%2Fpasswd`, { headers: cookie });
    expect(escape.status).toBe(400);
    expect(((await escape.json()) as { detail: string }).detail).toBe('Path is outside the workspace');

    expect((await fetch(`${base}/app.js`)).status).toBe(401);
    expect((await fetch(`${base}/app.js`, { headers: { cookie: 'oh_workspace_session_key=wrong' } })).status).toBe(401);
    // The cookie opens nothing but the workspace files.
    expect((await fetch(`${ctx.server.url}/api/conversations/${id}`, { headers: cookie })).status).toBe(401);

    const cleared = await fetch(`${ctx.server.url}/api/auth/workspace-session`, { method: 'DELETE', headers: { 'X-Session-API-Key': KEY } });
    expect(cleared.status).toBe(204);
    expect(cleared.headers.get('set-cookie')).toContain('oh_workspace_session_key=; Path=/api/conversations; HttpOnly; SameSite=None; Max-Age=0');
  });

  it("stop a deleted conversation's own sandbox, keeping its files", async () => {
    const workingDir = `/srv/${randomUUID()}`;
    const id = (await ctx.call('POST', '/api/conversations', { agent: { kind: 'Agent', llm: { model: 'm' } }, workspace: { working_dir: workingDir } })).body.id;
    expect((await top.upload(`${workingDir}/kept.txt`, Buffer.from('kept'))).status).toBe(200);
    const sandbox = (await ctx.call('GET', `/api/conversations/${id}`)).body.sandbox_id;
    const row = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id: sandbox } });
    const pid = (row.handle as { pid: number }).pid;
    expect((await ctx.call('DELETE', `/api/conversations/${id}`)).status).toBe(200);
    expect((await ctx.call('GET', `/api/sandboxes/${sandbox}`)).body.status).toBe('stopped');
    expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(join(ctx.server.dataDir, 'sandboxes', sandbox, workingDir, 'kept.txt'))).toBe(true);
  });

  it('refuse a path in no working dir and outside the home, naming the sandbox prefix', async () => {
    const res = await top.download('/etc/passwd');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { detail: string }).detail).toContain('/sandboxes/{sandbox_id}/api/');
    const relative = await ctx.call('POST', '/api/bash/execute_bash_command', { command: 'true', cwd: 'relative/dir' });
    expect(relative.status).toBe(400);
  });

  it("find a background command started in a conversation's sandbox by its id alone, for its tenant only", async () => {
    const workingDir = `/srv/${randomUUID()}`;
    await ctx.call('POST', '/api/conversations', { agent: { kind: 'Agent', llm: { model: 'm' } }, workspace: { kind: 'LocalWorkspace', working_dir: workingDir } });
    const started = await ctx.call('POST', '/api/bash/start_bash_command', { command: 'echo from-the-conversation-$((5*5))', cwd: workingDir });
    expect(started.status).toBe(200);
    const id = started.body.id as string;
    // As the SDK polls it: the search names the command, not the folder.
    let output: { stdout?: string } | undefined;
    await until(async () => {
      const page = await ctx.call('GET', `/api/bash/bash_events/search?command_id__eq=${id}&limit=20`);
      output = page.body.items?.find((e: { kind: string; exit_code?: number }) => e.kind === 'BashOutput' && e.exit_code !== undefined && e.exit_code !== null);
      return Boolean(output);
    }, 'the command output', 20_000);
    expect(output?.stdout).toContain('from-the-conversation-25');
    expect((await ctx.call('GET', `/api/bash/bash_events/${id}`)).body.id).toBe(id);
    // An answer larger than the gateway remembers (the command is echoed in it) still arrives whole.
    const long = `: ${'x'.repeat(1_200_000)}; echo long-done`;
    const big = await ctx.call('POST', '/api/bash/start_bash_command', { command: long, cwd: workingDir });
    expect(big.status).toBe(200);
    expect(big.body.command).toBe(long);
    // Another tenant naming the same id reaches only its own home sandbox, where no such command ran.
    const other = (await createTenant(ctx.server)).key;
    const theirs = await api(ctx.server, 'GET', `/api/bash/bash_events/search?command_id__eq=${id}`, { key: other });
    expect(theirs.status).toBe(200);
    expect(theirs.body.items).toEqual([]);
    expect(JSON.stringify(theirs.body)).not.toContain('from-the-conversation');
  });

  it("never route into another tenant's conversation", async () => {
    const workingDir = `/srv/${randomUUID()}`;
    await ctx.call('POST', '/api/conversations', { agent: { kind: 'Agent', llm: { model: 'm' } }, workspace: { kind: 'LocalWorkspace', working_dir: workingDir } });
    const other = (await createTenant(ctx.server)).key;
    const res = await api(ctx.server, 'GET', `/api/file/download?path=${encodeURIComponent(`${workingDir}/x`)}`, { key: other });
    expect(res.status).toBe(400);
  });
});

describe.each(STORAGES)('the idle clock (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_REAPER_INTERVAL_MS: '0' }, KEY);
  const age = async (id: string, field: 'lastActivityAt' | 'createdAt', seconds: number) =>
    ctx.server.app.get(Database).prisma.sandbox.update({ where: { id }, data: { [field]: new Date(Date.now() - seconds * 1000) } });

  it('stops idle sandboxes, spares busy ones, resumes on the next call, and deletes those past their ttl', async () => {
    const reaper = ctx.server.app.get(SandboxReaper);
    const idle = (await ctx.call('POST', '/api/sandboxes', { idle_timeout: 10 })).body.id;
    const busy = (await ctx.call('POST', '/api/sandboxes', { idle_timeout: 10 })).body.id;
    const expiring = (await ctx.call('POST', '/api/sandboxes', { ttl: 10 })).body.id;

    const started = await ctx.call('POST', `/sandboxes/${busy}/api/bash/start_bash_command`, { command: 'sleep 20', timeout: 60 });
    expect(started.status).toBe(200);
    await age(idle, 'lastActivityAt', 60);
    await age(busy, 'lastActivityAt', 60);
    await age(expiring, 'createdAt', 60);

    const swept = await reaper.sweepOnce();
    expect(swept.stopped).toEqual([idle]);
    expect(swept.deleted).toEqual([expiring]);
    expect((await ctx.call('GET', `/api/sandboxes/${idle}`)).body.status).toBe('stopped');
    expect((await ctx.call('GET', `/api/sandboxes/${busy}`)).body.status).toBe('running');
    expect((await ctx.call('GET', `/api/sandboxes/${expiring}`)).status).toBe(404);

    // Transparent resume: the next call that needs the sandbox starts it again.
    expect((await ctx.call('GET', `/sandboxes/${idle}/api/file/home`)).status).toBe(200);
    expect((await ctx.call('GET', `/api/sandboxes/${idle}`)).body.status).toBe('running');
    for (const id of [idle, busy]) await ctx.call('DELETE', `/api/sandboxes/${id}`);
  });

  it('finds an idle running sandbox behind more stopped rows than a page holds', async () => {
    const reaper = ctx.server.app.get(SandboxReaper);
    const prisma = ctx.server.app.get(Database).prisma;
    const longAgo = new Date(Date.now() - 7200_000);
    const stopped = Array.from({ length: 600 }, () => ({ id: randomUUID(), tenantId: DEFAULT_TENANT_ID, driver: 'local', status: 'stopped', lastActivityAt: longAgo, idleTimeoutSeconds: 10 }));
    await prisma.sandbox.createMany({ data: stopped });
    const idle = (await ctx.call('POST', '/api/sandboxes', { idle_timeout: 10 })).body.id;
    await age(idle, 'lastActivityAt', 60);

    expect((await reaper.sweepOnce()).stopped).toEqual([idle]);
    expect((await ctx.call('GET', `/api/sandboxes/${idle}`)).body.status).toBe('stopped');
    await prisma.sandbox.deleteMany({ where: { id: { in: [...stopped.map((r) => r.id), idle] } } });
  });

  it("counts a conversation's events as its sandbox's activity", async () => {
    const reaper = ctx.server.app.get(SandboxReaper);
    const sandbox = (await ctx.call('POST', '/api/sandboxes', { idle_timeout: 10 })).body.id;
    const conversation = (await ctx.call('POST', '/api/conversations', { agent: { kind: 'Agent', llm: { model: 'm' } }, workspace: { working_dir: '/workspace/project' }, sandbox_id: sandbox })).body.id;
    await age(sandbox, 'lastActivityAt', 60);
    expect((await ctx.call('POST', `/api/conversations/${conversation}/events`, { role: 'user', content: [{ type: 'text', text: 'still here' }] })).status).toBe(200);
    expect((await reaper.sweepOnce()).stopped).not.toContain(sandbox);
    expect((await ctx.call('GET', `/api/sandboxes/${sandbox}`)).body.status).toBe('running');
    await ctx.call('DELETE', `/api/sandboxes/${sandbox}`);
  });
});

describe('bash events socket through the gateway (embedded)', () => {
  const ctx = useServer('embedded', { OH_SESSION_API_KEYS_0: KEY }, KEY);
  it('replays and streams a sandbox bash events, and starts commands sent as frames', async () => {
    const sandbox = (await ctx.call('POST', '/api/sandboxes', {})).body.id;
    await ctx.call('POST', `/sandboxes/${sandbox}/api/bash/execute_bash_command`, { command: 'echo before' });
    const ws = new SocketClient(`${ctx.server.wsUrl}/sandboxes/${sandbox}/sockets/bash-events?session_api_key=${KEY}&resend_mode=all`);
    await ws.waitFor((f) => f.some((e) => e.kind === 'BashOutput' && String(e.stdout).includes('before')));
    ws.send({ command: 'echo over-the-socket' });
    await ws.waitFor((f) => f.some((e) => e.kind === 'BashOutput' && String(e.stdout).includes('over-the-socket') && e.exit_code === 0));
    ws.close();
    expect(await new SocketClient(`${ctx.server.wsUrl}/sandboxes/${sandbox}/sockets/bash-events?session_api_key=wrong`).waitClosed()).toBe(4001);
  });
});

describe('bash event batch reads through the gateway', () => {
  const ctx = useServer('embedded', { OH_SESSION_API_KEYS_0: KEY }, KEY);
  it('take the ids as a JSON body on GET, as OpenHands clients send them', async () => {
    const sandbox = (await ctx.call('POST', '/api/sandboxes', {})).body.id;
    const command = (await ctx.call('POST', `/sandboxes/${sandbox}/api/bash/start_bash_command`, { command: 'echo batch' })).body;
    const batch = await ctx.call('GET', `/sandboxes/${sandbox}/api/bash/bash_events/`, [command.id, 'f'.repeat(32)]);
    expect(batch.status).toBe(200);
    expect(batch.body.map((e: { id: string } | null) => e?.id ?? null)).toEqual([command.id, null]);
  });
});
