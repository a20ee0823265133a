import { RunningExecutor, startExecutor } from './support/processes';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/**
 * The routes of the OpenHands 1.58 workspace surface on the built executor: the Commits view
 * (`/api/git/commits`, `/api/git/commits/{sha}/changes`, `diff?commit=`), the folder picker
 * (`/api/file/search_subdirs`), workspace export (`/api/file/archive`), and stopping one bash
 * command — over real HTTP, with hostile inputs: dot segments, option-like shas, symlinks out.
 */

const TOKEN = 'executor-158-e2e-token';
const AUTH = { 'x-sandbox-token': TOKEN };

type Json = Record<string, any>;

let root: string;
let outside: string;
let executor: RunningExecutor;

async function call(method: string, path: string, query: Record<string, string | number | string[]> = {}, json?: unknown) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const one of Array.isArray(v) ? v : [v]) qs.append(k, String(one));
  const url = `http://127.0.0.1:${executor.port}${path}${qs.size ? `?${qs}` : ''}`;
  const res = await fetch(url, { method, headers: { ...AUTH, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) }, body: json !== undefined ? JSON.stringify(json) : undefined });
  const bytes = Buffer.from(await res.arrayBuffer());
  const body = (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(bytes.toString('utf8')) : null;
  return { status: res.status, body, bytes, headers: res.headers };
}
/** The status of a request sent with its path exactly as written (fetch would resolve dot segments first). */
function rawStatus(method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: executor.port, method, path, headers: AUTH }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}
const get = (path: string, query: Record<string, string | number | string[]> = {}) => call('GET', path, query);

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Tess', '-c', 'user.email=t@example.com', ...args], { cwd, env: { PATH: process.env.PATH ?? '', GIT_CEILING_DIRECTORIES: tmpdir() } })
    .toString('utf8')
    .trim();
}

/** The entries of a tar archive: name → content (folders: null). */
function untar(data: Buffer): Map<string, Buffer | null> {
  const entries = new Map<string, Buffer | null>();
  let paxPath: string | null = null;
  for (let at = 0; at + 512 <= data.length; ) {
    const header = data.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156]);
    const body = data.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const m = /\d+ path=(.*)\n/.exec(body.toString('utf8'));
      paxPath = m ? m[1] : null;
      continue;
    }
    entries.set(paxPath ?? name, type === '5' ? null : Buffer.from(body));
    paxPath = null;
  }
  return entries;
}

beforeAll(async () => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'berth-158-')));
  outside = realpathSync(mkdtempSync(join(tmpdir(), 'berth-158-outside-')));
  executor = await startExecutor(root, TOKEN);
});

afterAll(async () => {
  await executor?.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

describe('git history (the Commits view)', () => {
  let repo: string;
  let first: string;
  let second: string;

  beforeAll(() => {
    repo = join(root, 'history');
    mkdirSync(join(repo, 'src'), { recursive: true });
    git(repo, 'init', '-q');
    writeFileSync(join(repo, 'a.txt'), 'one\n');
    writeFileSync(join(repo, 'old.txt'), 'old\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'first commit');
    first = git(repo, 'rev-parse', 'HEAD');
    writeFileSync(join(repo, 'a.txt'), 'two\n');
    writeFileSync(join(repo, 'src', 'b.txt'), 'b\n');
    rmSync(join(repo, 'old.txt'));
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'second: a subject with \u00e9');
    second = git(repo, 'rev-parse', 'HEAD');
    // Working-tree changes after the last commit are not history.
    writeFileSync(join(repo, 'a.txt'), 'three\n');
  });

  it('lists commits newest first with has_more paging, as OpenHands does', async () => {
    const all = await get('/api/git/commits', { path: repo });
    expect(all.status).toBe(200);
    expect(all.body.has_more).toBe(false);
    expect(all.body.commits.map((c: Json) => [c.sha, c.subject])).toEqual([
      [second, 'second: a subject with \u00e9'],
      [first, 'first commit'],
    ]);
    const [top] = all.body.commits;
    expect(Object.keys(top).sort()).toEqual(['author', 'sha', 'short_sha', 'subject', 'timestamp']);
    expect(top.author).toBe('Tess');
    expect(second.startsWith(top.short_sha)).toBe(true);
    expect(top.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);

    const one = await get('/api/git/commits', { path: repo, limit: 1 });
    expect([one.body.commits.length, one.body.commits[0].sha, one.body.has_more]).toEqual([1, second, true]);
    // A folder inside the repository reads the same history.
    expect((await get('/api/git/commits', { path: join(repo, 'src') })).body.commits).toHaveLength(2);
  });

  it('answers an empty page outside a repository or before the first commit, and 422 for a bad limit', async () => {
    mkdirSync(join(root, 'plain'), { recursive: true });
    expect((await get('/api/git/commits', { path: join(root, 'plain') })).body).toEqual({ commits: [], has_more: false });
    expect((await get('/api/git/commits', { path: join(root, 'missing') })).body).toEqual({ commits: [], has_more: false });
    // A missing folder or a file inside a repository is no repository either (as OpenHands).
    expect((await get('/api/git/commits', { path: join(repo, 'missing') })).body).toEqual({ commits: [], has_more: false });
    expect((await get('/api/git/commits', { path: join(repo, 'a.txt') })).body).toEqual({ commits: [], has_more: false });
    expect((await get(`/api/git/commits/${first}/changes`, { path: join(repo, 'missing') })).body).toEqual([]);
    const unborn = join(root, 'unborn');
    mkdirSync(unborn);
    git(unborn, 'init', '-q');
    expect((await get('/api/git/commits', { path: unborn })).body).toEqual({ commits: [], has_more: false });
    for (const limit of [0, 201, 'x']) {
      const bad = await get('/api/git/commits', { path: repo, limit });
      expect([bad.status, bad.body.detail[0].loc]).toEqual([422, ['query', 'limit']]);
    }
    expect((await get('/api/git/commits', {})).status).toBe(422);
  });

  it("lists one commit's changes against its first parent (a root commit: all added)", async () => {
    const changes = await get(`/api/git/commits/${second}/changes`, { path: repo });
    expect([changes.status, changes.body]).toEqual([
      200,
      [
        { status: 'UPDATED', path: 'a.txt' },
        { status: 'DELETED', path: 'old.txt' },
        { status: 'ADDED', path: 'src/b.txt' },
      ],
    ]);
    expect((await get(`/api/git/commits/${first.slice(0, 7)}/changes`, { path: repo })).body).toEqual([
      { status: 'ADDED', path: 'a.txt' },
      { status: 'ADDED', path: 'old.txt' },
    ]);
    expect((await get(`/api/git/commits/${second}/changes`, { path: join(root, 'plain') })).body).toEqual([]);
    const unknown = await get('/api/git/commits/deadbeef/changes', { path: repo });
    expect([unknown.status, unknown.body.detail]).toEqual([400, "Git command failed: git rev-parse --verify 'deadbeef^{commit}'"]);
  });

  it('diffs a file as a commit changed it, from git objects (deleted files too)', async () => {
    expect((await get('/api/git/diff', { path: join(repo, 'a.txt'), commit: second })).body).toEqual({ modified: 'two', original: 'one' });
    expect((await get('/api/git/diff', { path: join(repo, 'old.txt'), commit: second })).body).toEqual({ modified: '', original: 'old' });
    expect((await get('/api/git/diff', { path: join(repo, 'a.txt'), commit: first })).body).toEqual({ modified: 'one', original: '' });
    expect((await get('/api/git/diff', { path: join(repo, 'a.txt'), commit: 'abcdef12' })).status).toBe(400);
  });

  it('never lets a sha, a ref or a path reach git as an option, nor a path leave the sandbox', async () => {
    const marker = join(outside, 'written-by-git');
    for (const sha of ['--output=x', '-p', 'HEAD', 'abc', `${'a'.repeat(65)}`, 'abcd%20--output=x', 'abcd ']) {
      const res = await get(`/api/git/commits/${encodeURIComponent(sha)}/changes`, { path: repo });
      expect([sha, res.status, res.body.detail[0].loc]).toEqual([sha, 422, ['path', 'sha']]);
    }
    // With a slash in it (encoded), no route matches at all.
    expect((await get(`/api/git/commits/${encodeURIComponent(`--output=${marker}`)}/changes`, { path: repo })).status).toBe(404);
    for (const commit of [`--output=${marker}`, 'HEAD~1']) {
      expect((await get('/api/git/diff', { path: join(repo, 'a.txt'), commit })).status).toBe(422);
    }
    expect(existsSync(marker)).toBe(false);

    // Dot segments in the route never reach another route; in the path they stay inside the root.
    expect(await rawStatus('GET', `/api/git/commits/${second}/../../../tools/execute?path=${repo}`)).toBe(404);
    expect(await rawStatus('GET', `/api/git/commits/%2e%2e/changes?path=${repo}`)).toBe(404);
    expect(await rawStatus('GET', `/api/git/commits/..%2f..%2fx/changes?path=${repo}`)).toBe(404);
    const up = await get('/api/git/commits', { path: `${root}/../${outside.split('/').pop()}` });
    expect(up.status).toBe(403);
    expect((await get('/api/git/commits', { path: 'history' })).status).toBe(400);

    // A repository outside, reached through a symlink, is refused.
    const outsideRepo = join(outside, 'repo');
    mkdirSync(outsideRepo);
    git(outsideRepo, 'init', '-q');
    writeFileSync(join(outsideRepo, 'secret.txt'), 'secret\n');
    git(outsideRepo, 'add', '-A');
    git(outsideRepo, 'commit', '-qm', 'secret history');
    symlinkSync(outsideRepo, join(root, 'link-out'));
    for (const path of ['/api/git/commits', `/api/git/commits/${git(outsideRepo, 'rev-parse', 'HEAD')}/changes`]) {
      const res = await get(path, { path: join(root, 'link-out') });
      expect([res.status, JSON.stringify(res.body)]).toEqual([403, expect.not.stringContaining('secret history')]);
    }
    expect((await get('/api/git/diff', { path: join(root, 'link-out', 'secret.txt'), commit: git(outsideRepo, 'rev-parse', 'HEAD') })).status).toBe(403);
  });
});

describe('search_subdirs (the folder picker)', () => {
  let base: string;

  beforeAll(() => {
    base = join(root, 'picker');
    for (const name of ['beta', 'Alpha', 'alpha', '.hidden', 'gamma']) mkdirSync(join(base, name), { recursive: true });
    writeFileSync(join(base, 'file.txt'), 'not a folder');
    symlinkSync(join(base, 'beta'), join(base, 'link-in'));
    symlinkSync(outside, join(base, 'link-out'));
  });

  it('lists the folders right inside, sorted case-insensitively, symlinks and files skipped, paged by name', async () => {
    const all = await get('/api/file/search_subdirs', { path: base });
    expect(all.status).toBe(200);
    expect(all.body).toEqual({
      items: ['Alpha', 'alpha', 'beta', 'gamma'].map((name) => ({ name, path: join(base, name) })),
      next_page_id: null,
    });
    const page1 = await get('/api/file/search_subdirs', { path: base, limit: 2, include_hidden: 'true' });
    expect(page1.body).toEqual({ items: ['.hidden', 'Alpha'].map((name) => ({ name, path: join(base, name) })), next_page_id: 'alpha' });
    const page2 = await get('/api/file/search_subdirs', { path: base, limit: 2, include_hidden: 'true', page_id: page1.body.next_page_id });
    expect(page2.body).toEqual({ items: ['alpha', 'beta'].map((name) => ({ name, path: join(base, name) })), next_page_id: 'gamma' });
    // The executor's own folder is not the workspace's.
    const top = await get('/api/file/search_subdirs', { path: root, include_hidden: 'true' });
    expect(top.body.items.map((i: Json) => i.name)).not.toContain('.berth');
  });

  it('answers as OpenHands for a missing folder, a file, a relative path, a bad limit; 403 out of the sandbox', async () => {
    expect([(await get('/api/file/search_subdirs', { path: join(base, 'nope') })).status, (await get('/api/file/search_subdirs', { path: join(base, 'nope') })).body]).toEqual([
      404,
      { detail: 'Directory not found' },
    ]);
    expect((await get('/api/file/search_subdirs', { path: join(base, 'file.txt') })).body).toEqual({ detail: 'Path is not a directory' });
    expect((await get('/api/file/search_subdirs', { path: 'picker' })).body).toEqual({ detail: 'Path must be absolute' });
    for (const limit of [0, 101]) expect((await get('/api/file/search_subdirs', { path: base, limit })).status).toBe(422);
    expect((await get('/api/file/search_subdirs', { path: join(base, 'link-in') })).body.items).toEqual([]);
    expect((await get('/api/file/search_subdirs', { path: join(base, 'link-out') })).status).toBe(403);
    expect((await get('/api/file/search_subdirs', { path: `${base}/../../${outside.split('/').pop()}` })).status).toBe(403);
    expect((await get('/api/file/search_subdirs', { path: '/' })).status).toBe(403);
    expect(await rawStatus('GET', `/api/file/search_subdirs/../../tools/execute?path=${base}`)).toBe(404);
  });
});

describe('archive (workspace export)', () => {
  let project: string;
  let repo: string;

  beforeAll(() => {
    project = join(root, 'export');
    repo = join(project, 'group', 'repo');
    mkdirSync(join(repo, 'node_modules', 'dep'), { recursive: true });
    mkdirSync(join(repo, 'empty-dir'));
    git(repo, 'init', '-q');
    git(repo, 'remote', 'add', 'origin', 'https://user:s3cret-token@example.com/o/r.git');
    writeFileSync(join(repo, 'kept.txt'), 'kept\n');
    writeFileSync(join(repo, 'edited.txt'), 'before\n');
    writeFileSync(join(repo, 'removed.txt'), 'removed\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'base');
    writeFileSync(join(repo, 'edited.txt'), 'after\n');
    rmSync(join(repo, 'removed.txt'));
    writeFileSync(join(repo, 'new.txt'), 'new\n');
    writeFileSync(join(repo, 'node_modules', 'dep', 'index.js'), 'vendored\n');
    writeFileSync(join(repo, 'skip.log'), 'log\n');
    writeFileSync(join(repo, `${'long-name-'.repeat(12)}.txt`), 'long\n');
    writeFileSync(join(outside, 'outside-secret.txt'), 'must not be archived\n');
    symlinkSync(join(outside, 'outside-secret.txt'), join(repo, 'link-to-outside.txt'));
    symlinkSync(outside, join(repo, 'link-dir-out'));
  });

  it('exports a git patch of the working tree against HEAD of a detached or remote-less repository, with the repo identity', async () => {
    const patch = await get('/api/file/archive', { path: repo, base_ref: 'HEAD' });
    expect(patch.status).toBe(200);
    expect(patch.headers.get('content-type')).toBe('text/x-patch; charset=utf-8');
    expect(patch.headers.get('content-disposition')).toBe('attachment; filename="repo.patch"');
    expect(patch.headers.get('x-archive-base-ref')).toBe('HEAD');
    expect(patch.headers.get('x-archive-base-commit')).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(patch.headers.get('x-archive-head-commit')).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(decodeURIComponent(patch.headers.get('x-archive-repo-root')!)).toBe(repo);
    // The remote's credentials never leave.
    expect(decodeURIComponent(patch.headers.get('x-archive-repo-remote')!)).toBe('https://****@example.com/o/r.git');
    const text = patch.bytes.toString('utf8');
    expect(text).toContain('+++ b/edited.txt');
    expect(text).toContain('+after');
    expect(text).toContain('--- a/removed.txt');
    expect(text).toContain('+++ b/new.txt');
    expect(text).not.toContain('vendored');
    // A symlink is archived as a link (what git records), never what it points at.
    expect(text).not.toContain('must not be archived');
    // The repository's own index is untouched.
    expect(git(repo, 'status', '--porcelain')).toContain('?? new.txt');

    // Asked for the folder holding it, the single repository below is exported; excludes apply.
    const fromProject = await get('/api/file/archive', { path: project, base_ref: 'HEAD', exclude: ['new.txt'] });
    expect(fromProject.status).toBe(200);
    expect(fromProject.headers.get('content-disposition')).toBe('attachment; filename="repo.patch"');
    expect(fromProject.bytes.toString('utf8')).not.toContain('new.txt');
    // No remote default branch: the patch is against the empty tree, and says so with no base.
    const auto = await get('/api/file/archive', { path: repo });
    expect(auto.status).toBe(200);
    expect(auto.headers.get('x-archive-base-commit')).toBeNull();
    expect(auto.bytes.toString('utf8')).toContain('+++ b/kept.txt');
  });

  it('exports a tar.gz of the files (symlinks never followed, defaults excluded, credentials never), with a manifest', async () => {
    const res = await get('/api/file/archive', { path: repo, format: 'tar.gz', exclude: ['*.log'] });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="repo.tar.gz"');
    expect(Number(res.headers.get('content-length'))).toBe(res.bytes.length);
    const entries = untar(gunzipSync(res.bytes));
    const names = [...entries.keys()];
    // GNU tar reads it the same way.
    expect(execFileSync('tar', ['-tzf', '-'], { input: res.bytes }).toString('utf8').trim().split('\n').sort()).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['repo/', 'repo/kept.txt', 'repo/edited.txt', 'repo/new.txt', 'repo/empty-dir/', `repo/${'long-name-'.repeat(12)}.txt`, 'repo/archive_manifest.json']));
    expect(entries.get('repo/edited.txt')!.toString()).toBe('after\n');
    expect(names.some((n) => n.includes('node_modules') || n.includes('.git/') || n.endsWith('.log') || n.includes('link-'))).toBe(false);
    expect(JSON.parse(entries.get('repo/archive_manifest.json')!.toString())).toMatchObject({ format: 'tar.gz', source: 'repo', file_count: 4 });

    // A full capture takes .git too, but never its credentials (the remote's token is in .git/config).
    const full = untar(gunzipSync((await get('/api/file/archive', { path: repo, format: 'tar.gz', use_default_excludes: 'false' })).bytes));
    expect([...full.keys()]).toEqual(expect.arrayContaining(['repo/.git/HEAD', 'repo/node_modules/dep/index.js']));
    expect([...full.keys()].some((n) => n === 'repo/.git/config' || n.includes('.git/logs'))).toBe(false);
    expect([...full.values()].some((b) => b?.toString().includes('s3cret-token'))).toBe(false);
    // Archive files never stay behind in the sandbox.
    expect(readdirSync(join(root, '.berth', 'archives'))).toEqual([]);
  });

  it('a plain folder exports as tar.gz, refuses git-delta; hostile inputs are 4xx', async () => {
    const plain = join(root, 'plain-export');
    mkdirSync(plain);
    writeFileSync(join(plain, 'f.txt'), 'f');
    const tar = await get('/api/file/archive', { path: plain, format: 'tar.gz' });
    expect([tar.status, [...untar(gunzipSync(tar.bytes)).keys()]]).toEqual([200, ['plain-export/', 'plain-export/f.txt', 'plain-export/archive_manifest.json']]);
    expect(tar.headers.get('x-archive-repo-root')).toBeNull();
    expect((await get('/api/file/archive', { path: plain })).body).toEqual({ detail: `Not a git repository: ${plain}` });

    expect((await get('/api/file/archive', { path: repo, base_ref: `--output=${join(outside, 'x')}` })).body).toEqual({ detail: "base_ref must not start with '-'" });
    expect((await get('/api/file/archive', { path: repo, base_ref: 'no-such-ref' })).body).toEqual({ detail: "base_ref 'no-such-ref' could not be resolved" });
    expect(existsSync(join(outside, 'x'))).toBe(false);
    expect((await get('/api/file/archive', { path: repo, format: 'zip' })).status).toBe(422);
    expect(await rawStatus('GET', `/api/file/archive/../../tools/execute?path=${repo}`)).toBe(404);
    expect((await get('/api/file/archive', { path: join(root, 'nope') })).body).toEqual({ detail: 'Directory not found' });
    expect((await get('/api/file/archive', { path: join(repo, 'kept.txt') })).body).toEqual({ detail: 'Path is not a directory' });
    expect((await get('/api/file/archive', { path: 'repo' })).status).toBe(400);
    expect((await get('/api/file/archive', { path: join(repo, 'link-dir-out'), format: 'tar.gz' })).status).toBe(403);
    expect((await get('/api/file/archive', { path: `${root}/../${outside.split('/').pop()}`, format: 'tar.gz' })).status).toBe(403);
    // The executor's archive folder swapped for a symlink out is refused, never written through.
    rmSync(join(root, '.berth', 'archives'), { recursive: true, force: true });
    symlinkSync(outside, join(root, '.berth', 'archives'));
    try {
      expect((await get('/api/file/archive', { path: plain, format: 'tar.gz' })).status).toBe(403);
      expect(readdirSync(outside).some((n) => n.endsWith('.tar.gz'))).toBe(false);
    } finally {
      rmSync(join(root, '.berth', 'archives'));
    }
  });
});

describe('bash: stop one command, clear events', () => {
  it('stops a running command (SIGTERM: exit code -15), leaves the others, is idempotent, 404 for an unknown id', async () => {
    const long = (await call('POST', '/api/bash/start_bash_command', {}, { command: 'sleep 30', timeout: 60 })).body;
    const other = (await call('POST', '/api/bash/start_bash_command', {}, { command: 'sleep 1; echo other-done', timeout: 60 })).body;
    const stop = await call('POST', `/api/bash/bash_commands/${long.id}/stop`);
    expect([stop.status, stop.body]).toEqual([200, { success: true }]);
    const deadline = Date.now() + 10_000;
    let last: Json | undefined;
    while (Date.now() < deadline) {
      const page = await get('/api/bash/bash_events/search', { kind__eq: 'BashOutput', command_id__eq: long.id });
      last = page.body.items.find((e: Json) => e.exit_code !== null);
      if (last) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(last?.exit_code).toBe(-15);
    // The other command ran on.
    const otherDone = async () => (await get('/api/bash/bash_events/search', { kind__eq: 'BashOutput', command_id__eq: other.id })).body.items.find((e: Json) => e.exit_code !== null);
    let done: Json | undefined;
    while (!done && Date.now() < deadline + 5000) {
      done = await otherDone();
      if (!done) await new Promise((r) => setTimeout(r, 50));
    }
    expect([done?.exit_code, done?.stdout]).toEqual([0, 'other-done\n']);
    // Stopping a finished command succeeds; the dashed form of its id too.
    const dashed = long.id.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    expect((await call('POST', `/api/bash/bash_commands/${dashed}/stop`)).body).toEqual({ success: true });
    expect((await call('POST', '/api/bash/bash_commands/0123456789abcdef0123456789abcdef/stop')).status).toBe(404);
    const bad = await call('POST', '/api/bash/bash_commands/not-a-uuid/stop');
    expect([bad.status, bad.body.detail[0].loc]).toEqual([422, ['path', 'command_id']]);
    expect((await call('GET', `/api/bash/bash_commands/${long.id}/stop`)).status).toBe(405);
    expect(await rawStatus('POST', `/api/bash/bash_commands/${long.id}/../../../tools/execute`)).toBe(404);
    expect(await rawStatus('POST', `/api/bash/bash_commands/%2e%2e/stop`)).toBe(404);
  });

  it('DELETE /api/bash/bash_events clears every event and says how many', async () => {
    await call('POST', '/api/bash/execute_bash_command', {}, { command: 'echo hi' });
    const cleared = await call('DELETE', '/api/bash/bash_events');
    expect(cleared.status).toBe(200);
    expect(cleared.body.cleared_count).toBeGreaterThanOrEqual(2);
    expect((await get('/api/bash/bash_events/search')).body).toEqual({ items: [], next_page_id: null });
    expect((await call('DELETE', '/api/bash/bash_events')).body).toEqual({ cleared_count: 0 });
  });
});
