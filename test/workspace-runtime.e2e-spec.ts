import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { api, createTenant, useServer } from './support/server';

/**
 * The OpenHands 1.58 workspace surface through the gateway, with real (isolated) sandboxes:
 * the conversation-scoped runtime routes (`/api/conversations/{id}/bash|file|git|vscode/*`)
 * forwarded to that conversation's sandbox and confined to its working dir, the new top-level
 * workspace routes the allowlist admits, and the tool catalog.
 */

const KEY = 'workspace-runtime-key';

type Json = Record<string, any>;

/** The status and body of a request sent with its path exactly as written (fetch resolves dot segments). */
function raw(url: string, method: string, path: string, key: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method, path, headers: { 'X-Session-API-Key': key } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('conversation runtime routes and the 1.58 workspace routes (postgres)', () => {
  const ctx = useServer('postgres', { OH_SESSION_API_KEYS_0: KEY }, KEY, { ownDatabase: true });
  let id: string;
  let workingDir: string;
  let base: string;
  let otherKey: string;

  const q = (path: string) => `path=${encodeURIComponent(path)}`;

  beforeAll(async () => {
    workingDir = `/srv/${randomUUID()}`;
    const created = await ctx.call('POST', '/api/conversations', { agent: { kind: 'Agent', llm: { model: 'm' } }, workspace: { kind: 'LocalWorkspace', working_dir: workingDir } });
    expect(created.status).toBe(201);
    id = created.body.id;
    base = `/api/conversations/${id}`;
    otherKey = (await createTenant(ctx.server)).key;
  });

  it("runs files and bash in the conversation's sandbox, in its working dir", async () => {
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('hello from the runtime route\n')]), 'a.txt');
    const upload = await fetch(`${ctx.server.url}${base}/file/upload?${q(`${workingDir}/notes/a.txt`)}`, { method: 'POST', headers: { 'X-Session-API-Key': KEY }, body: form });
    expect(upload.status).toBe(200);
    const download = await fetch(`${ctx.server.url}${base}/file/download?${q(`${workingDir}/notes/a.txt`)}`, { headers: { 'X-Session-API-Key': KEY } });
    expect([download.status, await download.text()]).toEqual([200, 'hello from the runtime route\n']);
    // The conversation's own sandbox, made on first use.
    const sandbox = (await ctx.call('GET', base)).body.sandbox_id;
    expect(sandbox).toEqual(expect.any(String));

    // Without a cwd, a command runs in the working dir; a relative cwd is inside it.
    const ran = await ctx.call('POST', `${base}/bash/execute_bash_command`, { command: 'cat notes/a.txt && pwd' });
    expect(ran.status).toBe(200);
    expect(ran.body.stdout).toContain('hello from the runtime route');
    expect(ran.body.stdout.trim().endsWith(workingDir)).toBe(true);
    expect((await ctx.call('POST', `${base}/bash/execute_bash_command`, { command: 'pwd', cwd: 'notes' })).body.stdout.trim().endsWith(`${workingDir}/notes`)).toBe(true);
    const started = await ctx.call('POST', `${base}/bash/start_bash_command`, { command: 'echo started', cwd: workingDir });
    expect(started.status).toBe(200);
    const search = await ctx.call('GET', `${base}/bash/bash_events/search?kind__eq=BashCommand`);
    expect(search.body.items.map((e: Json) => e.id)).toContain(started.body.id);
    expect((await ctx.call('GET', `${base}/bash/bash_events/${started.body.id}`)).body.command).toBe('echo started');
  });

  it('keeps every path and cwd inside the working dir (422), as the OpenHands runtime router does', async () => {
    for (const path of ['/etc/passwd', `${workingDir}/../other`, 'relative.txt', `${workingDir}-sibling/x`]) {
      const res = await ctx.call('GET', `${base}/file/download?${q(path)}`);
      expect([path, res.status, res.body.detail]).toEqual([path, 422, 'path must be inside the conversation workspace']);
    }
    expect((await ctx.call('GET', `${base}/git/changes?${q('/')}`)).status).toBe(422);
    for (const cwd of ['/', '/etc', '../..', `${workingDir}/../x`]) {
      const res = await ctx.call('POST', `${base}/bash/execute_bash_command`, { command: 'id', cwd });
      expect([cwd, res.status, res.body.detail]).toEqual([cwd, 422, 'cwd must be inside the conversation workspace']);
    }
  });

  it('serves git history, one commit’s changes and its diff, and the working dir as an archive', async () => {
    const commit = await ctx.call('POST', `${base}/bash/execute_bash_command`, {
      command: 'git add -A && git -c user.name=Tess -c user.email=t@example.com commit -qm "first in runtime" && git rev-parse HEAD',
    });
    expect(commit.body.exit_code).toBe(0);
    const sha = commit.body.stdout.trim();
    const commits = await ctx.call('GET', `${base}/git/commits?${q(workingDir)}&limit=5`);
    expect([commits.status, commits.body.has_more, commits.body.commits.map((c: Json) => [c.sha, c.subject, c.author])]).toEqual([200, false, [[sha, 'first in runtime', 'Tess']]]);
    expect((await ctx.call('GET', `${base}/git/commits/${sha}/changes?${q(workingDir)}`)).body).toEqual([{ status: 'ADDED', path: 'notes/a.txt' }]);
    expect((await ctx.call('GET', `${base}/git/diff?${q(`${workingDir}/notes/a.txt`)}&commit=${sha}`)).body).toEqual({ modified: 'hello from the runtime route', original: '' });
    const optionLike = await ctx.call('GET', `${base}/git/commits/--output=x/changes?${q(workingDir)}`);
    expect([optionLike.status, optionLike.body.detail[0].loc]).toEqual([422, ['path', 'sha']]);

    const archive = await fetch(`${ctx.server.url}${base}/file/archive?${q(workingDir)}&format=tar.gz`, { headers: { 'X-Session-API-Key': KEY } });
    expect(archive.status).toBe(200);
    expect(archive.headers.get('content-type')).toBe('application/gzip');
    expect(archive.headers.get('x-archive-head-commit')).toBe(sha);
    const tar = gunzipSync(Buffer.from(await archive.arrayBuffer())).toString('latin1');
    expect(tar).toContain('hello from the runtime route');
    const patch = await fetch(`${ctx.server.url}${base}/file/archive?${q(workingDir)}&base_ref=HEAD`, { headers: { 'X-Session-API-Key': KEY } });
    expect([patch.status, patch.headers.get('x-archive-base-commit'), patch.headers.get('content-type')]).toEqual([200, sha, 'text/x-patch; charset=utf-8']);
  });

  it('stops one bash command and clears the events', async () => {
    const long = (await ctx.call('POST', `${base}/bash/start_bash_command`, { command: 'sleep 30', timeout: 60 })).body;
    expect((await ctx.call('POST', `${base}/bash/bash_commands/${long.id}/stop`)).body).toEqual({ success: true });
    let exit: number | null = null;
    for (let i = 0; i < 200 && exit === null; i++) {
      const page = await ctx.call('GET', `${base}/bash/bash_events/search?kind__eq=BashOutput&command_id__eq=${long.id}`);
      exit = page.body.items.find((e: Json) => e.exit_code !== null)?.exit_code ?? null;
      if (exit === null) await new Promise((r) => setTimeout(r, 50));
    }
    expect(exit).toBe(-15);
    expect((await ctx.call('POST', `${base}/bash/bash_commands/${randomUUID()}/stop`)).status).toBe(404);
    const cleared = await ctx.call('DELETE', `${base}/bash/bash_events`);
    expect([cleared.status, cleared.body.cleared_count > 0]).toEqual([200, true]);
  });

  it('answers VS Code as OpenHands does with it disabled', async () => {
    const url = await ctx.call('GET', `${base}/vscode/url`);
    expect([url.status, url.body.detail]).toEqual([503, 'VSCode is disabled in configuration. Set enable_vscode=true to enable.']);
    expect((await ctx.call('GET', `${base}/vscode/url?workspace_dir=/etc`)).status).toBe(422);
    expect((await ctx.call('GET', `${base}/vscode/status`)).body).toEqual({ running: false, enabled: false, message: 'VSCode is disabled in configuration' });
    expect((await ctx.call('GET', '/api/vscode/url')).status).toBe(503);
    expect((await ctx.call('GET', '/api/vscode/status')).body.enabled).toBe(false);
  });

  it('admits only the runtime routes: no folder picker, no executor internals, no dot segments', async () => {
    for (const path of [`${base}/file/home`, `${base}/file/search_subdirs?${q(workingDir)}`, `${base}/tools/execute`, `${base}/file/nope`, `${base}/git/repositories/search`, `${base}/activity`]) {
      const res = await ctx.call('GET', path);
      expect([path, res.status]).toEqual([path, 404]);
    }
    expect((await ctx.call('POST', `${base}/bash/tools/execute`, {})).status).toBe(404);
    for (const path of [`${base}/bash/%2e%2e/tools/execute`, `${base}/bash/../../../tools/execute`, `${base}/file/..%2F..%2Fapi%2Ftools%2Fexecute`, `${base}/git/commits/..%2f..%2f..%2fsessions/x/changes`]) {
      const res = await raw(ctx.server.url, 'POST', path, KEY);
      expect([path, res.status]).toEqual([path, 404]);
      const read = await raw(ctx.server.url, 'GET', path, KEY);
      expect([path, read.status]).toEqual([path, 404]);
    }
    expect((await ctx.call('GET', `/api/conversations/not-a-uuid/git/commits?${q(workingDir)}`)).status).toBe(422);
    expect((await ctx.call('GET', `/api/conversations/${randomUUID()}/git/commits?${q(workingDir)}`)).status).toBe(404);
    expect((await api(ctx.server, 'GET', `${base}/git/commits?${q(workingDir)}`)).status).toBe(401);
  });

  it("is 404 on every runtime route for another tenant's conversation, and touches nothing", async () => {
    const marker = `${workingDir}/cross-tenant.txt`;
    const calls: [string, string, unknown?][] = [
      ['GET', `${base}/file/download?${q(`${workingDir}/notes/a.txt`)}`],
      ['POST', `${base}/file/upload?${q(marker)}`, 'x'],
      ['POST', `${base}/file/create_directory?${q(`${workingDir}/cross`)}`],
      ['GET', `${base}/file/archive?${q(workingDir)}&format=tar.gz`],
      ['POST', `${base}/bash/execute_bash_command`, { command: `touch ${marker}` }],
      ['POST', `${base}/bash/start_bash_command`, { command: `touch ${marker}` }],
      ['GET', `${base}/bash/bash_events/search`],
      ['DELETE', `${base}/bash/bash_events`],
      ['POST', `${base}/bash/bash_commands/${randomUUID()}/stop`],
      ['GET', `${base}/git/changes?${q(workingDir)}`],
      ['GET', `${base}/git/diff?${q(`${workingDir}/notes/a.txt`)}`],
      ['GET', `${base}/git/commits?${q(workingDir)}`],
      ['GET', `${base}/git/commits/abcd1234/changes?${q(workingDir)}`],
      ['GET', `${base}/vscode/url`],
      ['GET', `${base}/vscode/status`],
    ];
    for (const [method, path, body] of calls) {
      const res = await api(ctx.server, method, path, { key: otherKey, ...(body === undefined ? {} : typeof body === 'string' ? { rawBody: body, headers: { 'content-type': 'application/octet-stream' } } : { body }) });
      expect([method, path, res.status]).toEqual([method, path, 404]);
    }
    expect((await ctx.call('GET', `${base}/file/download?${q(marker)}`)).status).toBe(404);
    // The events the other tenant tried to clear are still there.
    expect((await ctx.call('POST', `${base}/bash/execute_bash_command`, { command: 'true' })).status).toBe(200);
    expect((await ctx.call('GET', `${base}/bash/bash_events/search`)).body.items.length).toBeGreaterThan(0);
  });

  it('forwards the new top-level routes (home sandbox and /sandboxes/{id}) and nothing more', async () => {
    const home = (await ctx.call('GET', '/api/file/home')).body.home as string;
    const project = `${home}/picker-${randomUUID()}`;
    expect((await ctx.call('POST', `/api/file/create_directory?${q(`${project}/child`)}`)).status).toBe(200);
    expect((await ctx.call('GET', `/api/file/search_subdirs?${q(project)}`)).body).toEqual({ items: [{ name: 'child', path: `${project}/child` }], next_page_id: null });
    const made = await ctx.call('POST', '/api/bash/execute_bash_command', { command: 'git init -q && git -c user.name=T -c user.email=t@e commit -q --allow-empty -m top && git rev-parse HEAD', cwd: project });
    const sha = made.body.stdout.trim();
    expect((await ctx.call('GET', `/api/git/commits?${q(project)}`)).body.commits[0].sha).toBe(sha);
    expect((await ctx.call('GET', `/api/git/commits/${sha}/changes?${q(project)}`)).body).toEqual([]);
    const archive = await fetch(`${ctx.server.url}/api/file/archive?${q(project)}&format=tar.gz`, { headers: { 'X-Session-API-Key': KEY } });
    expect([archive.status, archive.headers.get('content-disposition')]).toEqual([200, `attachment; filename="${project.split('/').pop()}.tar.gz"`]);
    expect((await ctx.call('POST', `/api/bash/bash_commands/${randomUUID()}/stop`)).status).toBe(404);

    const sandbox = (await ctx.call('POST', '/api/sandboxes', {})).body;
    const sandboxHome = (await ctx.call('GET', `/sandboxes/${sandbox.id}/api/file/home`)).body.home;
    expect((await ctx.call('GET', `/sandboxes/${sandbox.id}/api/git/commits?${q(sandboxHome)}`)).body).toEqual({ commits: [], has_more: false });
    expect((await ctx.call('GET', `/sandboxes/${sandbox.id}/api/file/search_subdirs?${q(sandboxHome)}`)).status).toBe(200);
    // Another tenant's sandbox does not exist for the caller.
    expect((await api(ctx.server, 'GET', `/sandboxes/${sandbox.id}/api/git/commits?${q(sandboxHome)}`, { key: otherKey })).status).toBe(404);
    expect((await api(ctx.server, 'GET', `/sandboxes/${sandbox.id}/api/file/archive?${q(sandboxHome)}&format=tar.gz`, { key: otherKey })).status).toBe(404);
    await ctx.call('DELETE', `/api/sandboxes/${sandbox.id}`);

    for (const path of ['/api/file/nope', '/api/git/log', '/api/bash/bash_commands/x', `/api/git/commits/${sha}`, '/api/activity', '/api/tools/execute']) {
      expect([path, (await ctx.call('GET', path)).status]).toEqual([path, 404]);
    }
    expect((await raw(ctx.server.url, 'GET', `/api/git/commits/..%2f..%2ftools/changes?${q(project)}`, KEY)).status).toBe(404);
  });

  it("serves a conversation's trajectory (its state and events, zipped) from the gateway, tenant-scoped", async () => {
    expect((await ctx.call('POST', `${base}/events`, { role: 'user', content: [{ type: 'text', text: 'trajectory message' }] })).status).toBe(200);
    const events = (await ctx.call('GET', `${base}/events/search?limit=100`)).body.items as Json[];
    const hex = id.replace(/-/g, '');
    for (const path of [`/api/file/download-trajectory/${id}`, `/api/file/download-trajectory/${hex}`, `${base}/file/download-trajectory/${hex}`]) {
      const res = await fetch(`${ctx.server.url}${path}`, { headers: { 'X-Session-API-Key': KEY } });
      expect([path, res.status, res.headers.get('content-disposition')]).toEqual([path, 200, `attachment; filename="${hex}.zip"`]);
      // Python's zipfile reads it as OpenHands' own trajectory archive.
      const listing = JSON.parse(
        execFileSync('python3', ['-c', 'import json,sys,zipfile,io; z=zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read())); assert z.testzip() is None; print(json.dumps({n: z.read(n).decode() for n in z.namelist()}))'], {
          input: Buffer.from(await res.arrayBuffer()),
        }).toString('utf8'),
      ) as Record<string, string>;
      const names = Object.keys(listing);
      expect(names.slice(0, 3)).toEqual([`${hex}/`, `${hex}/base_state.json`, `${hex}/events/`]);
      expect(names.slice(3)).toEqual(events.map((e, i) => `${hex}/events/event-${String(i).padStart(5, '0')}-${e.id}.json`));
      expect(JSON.parse(listing[`${hex}/base_state.json`])).toMatchObject({ id, workspace: { working_dir: workingDir } });
      expect(names.slice(3).filter((n) => listing[n].includes('trajectory message'))).toHaveLength(1);
    }
    const mismatch = await ctx.call('GET', `${base}/file/download-trajectory/${randomUUID()}`);
    expect([mismatch.status, mismatch.body.detail]).toEqual([422, 'Trajectory must belong to the selected conversation']);
    expect((await ctx.call('GET', `/api/file/download-trajectory/not-a-uuid`)).status).toBe(422);
    const unknown = await ctx.call('GET', `/api/file/download-trajectory/${randomUUID()}`);
    expect([unknown.status, unknown.body.detail]).toEqual([404, 'Conversation not found']);
    // Another tenant's conversation does not exist for the caller, at either route.
    for (const path of [`/api/file/download-trajectory/${id}`, `${base}/file/download-trajectory/${id}`]) {
      const foreign = await api(ctx.server, 'GET', path, { key: otherKey });
      expect([path, foreign.status, JSON.stringify(foreign.body).includes('trajectory message')]).toEqual([path, 404, false]);
    }
  });

  it('lists the tools the agent really has, in the OpenHands catalog shape', async () => {
    for (const path of ['/api/tools/', '/api/tools']) {
      const list = await ctx.call('GET', path);
      expect([path, list.status, list.body]).toEqual([path, 200, ['terminal', 'file_editor', 'task_tracker']]);
    }
    expect((await ctx.call('GET', '/api/tools/nope')).status).toBe(404);
    const catalog = await ctx.call('GET', '/api/tools/catalog');
    expect(catalog.status).toBe(200);
    expect(catalog.body.tools.map((t: Json) => t.name)).toEqual(['terminal', 'file_editor', 'task_tracker']);
    for (const entry of catalog.body.tools) {
      expect(Object.keys(entry).sort()).toEqual(['description', 'in_default_set', 'name', 'usable', 'user_selectable']);
      expect(entry).toMatchObject({ user_selectable: true, usable: true, in_default_set: true, description: expect.stringMatching(/\.$/) });
    }
    expect((await api(ctx.server, 'GET', '/api/tools/catalog')).status).toBe(401);
  });
});
