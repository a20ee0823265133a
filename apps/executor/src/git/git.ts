import { GitChange, GitChangeStatus, GitCommit, GitCommitsPage, GitDiff } from '@berth/contracts/executor';
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { HttpError } from '../errors';
import { BERTH_DIR, OpenFolder, SandboxPaths } from '../sandbox-paths';
import { logLine } from '../log';

/** git's well-known hash of the empty tree: the base of a repository without commits. */
export const GIT_EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
/** Larger files get no diff (as OpenHands). */
const MAX_DIFF_FILE_BYTES = 1024 * 1024;
const GIT_TIMEOUT_MS = 30_000;
const SAFE_CONFIG = ['-c', 'core.fsmonitor=false', '-c', 'core.quotePath=false', '-c', 'diff.external=', '-c', 'core.hooksPath=/dev/null'];

export class GitCommandError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
  ) {
    super(`Git command failed: git ${args.join(' ')}${stderr ? `: ${stderr}` : ''}`);
    this.name = 'GitCommandError';
  }
}

function posix(path: string): string {
  return sep === '/' ? path : path.split(sep).join('/');
}

/** Content as the diff view shows it: LF line ends, no final newline. */
function normalizeContent(text: string): string {
  return text.replace(/\r\n?/g, '\n').replace(/\n$/, '');
}

/** `git diff --name-status -z` as changes: a rename is its old path DELETED and its new one ADDED, a copy its new path ADDED (as OpenHands). */
function parseNameStatus(output: Buffer): GitChange[] {
  const changes: GitChange[] = [];
  const add = (status: GitChangeStatus, path: string) => changes.push({ status, path: posix(path) });
  const fields = output.toString('utf8').split('\0');
  for (let i = 0; i < fields.length && fields[i] !== ''; ) {
    const code = fields[i++];
    if (code.startsWith('R')) {
      add('DELETED', fields[i++]);
      add('ADDED', fields[i++]);
    } else if (code.startsWith('C')) {
      i++;
      add('ADDED', fields[i++]);
    } else {
      add(code === 'A' ? 'ADDED' : code === 'D' ? 'DELETED' : 'UPDATED', fields[i++]);
    }
  }
  return changes;
}

/** One line per commit of `git log`: sha, short sha, author, author date (strict ISO), subject, unit-separated. */
const LOG_FORMAT = '%H%x1f%h%x1f%an%x1f%aI%x1f%s';

const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeText(bytes: Buffer): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Git for the workspace API (contract §3.6) and the `git init` of working dirs, with the `git`
 * binary. Repositories are never looked for above the sandbox root (GIT_CEILING_DIRECTORIES).
 */
export class GitService {
  private readonly env: Record<string, string>;
  /** Working dirs already checked (and initialised when needed). */
  private readonly prepared = new Map<string, Promise<void>>();

  constructor(
    private readonly paths: SandboxPaths,
    shellEnv: Record<string, string>,
  ) {
    this.env = { ...shellEnv, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' };
  }

  /** `git <args>` in `cwd` (argv only, never a shell); `env` adds variables (a scratch GIT_INDEX_FILE). */
  run(args: string[], cwd: string, options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      // The repository's own config must not make the executor run programs (hooks never run here).
      const env = options.env ? { ...this.env, ...options.env } : this.env;
      execFile('git', [...SAFE_CONFIG, ...args], { cwd, env, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024, timeout: options.timeoutMs ?? GIT_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err) return reject(new GitCommandError(args, stderr.toString('utf8').trim() || err.message));
        resolve(stdout);
      });
    });
  }

  /** `git <args>` with its output written straight to the open file `fd` (never held in memory). */
  runTo(args: string[], cwd: string, fd: number, options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const env = options.env ? { ...this.env, ...options.env } : this.env;
      const child = spawn('git', [...SAFE_CONFIG, ...args], { cwd, env, stdio: ['ignore', fd, 'pipe'], timeout: options.timeoutMs ?? GIT_TIMEOUT_MS, killSignal: 'SIGKILL' });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        if (stderr.length < 64 * 1024) stderr += chunk.toString('utf8');
      });
      child.on('error', (err) => reject(new GitCommandError(args, err.message)));
      child.on('close', (code, signal) => {
        if (code === 0) return resolve();
        reject(new GitCommandError(args, stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${code}`)));
      });
    });
  }

  /** `git <args>` as trimmed text, or null when it fails. */
  tryText(args: string[], cwd: string): Promise<string | null> {
    return this.text(args, cwd).catch(() => null);
  }

  private async text(args: string[], cwd: string): Promise<string> {
    return (await this.run(args, cwd)).toString('utf8').trim();
  }


  /** The closest folder from `dir` up to the sandbox root that holds a `.git`, or null. */
  async repoOf(dir: string): Promise<string | null> {
    for (let current = dir; this.paths.contains(current); current = dirname(current)) {
      if (await lstat(join(current, '.git')).then(() => true, () => false)) return current;
      if (current === this.paths.root) break;
    }
    return null;
  }

  /**
   * As OpenHands does for a conversation's working dir: a folder that is not inside a git
   * repository gets `git init` (no commit), so new files show up as changes. Once per folder.
   */
  ensureRepo(dir: string): Promise<void> {
    let done = this.prepared.get(dir);
    if (!done) {
      done = this.init(dir).catch((err: Error) => {
        logLine('warn', `git init ${dir} failed`, err);
      });
      this.prepared.set(dir, done);
    }
    return done;
  }

  private async init(dir: string): Promise<void> {
    // git runs in the folder opened here (a folder swapped for a symlink never gets a repository outside).
    const folder = await this.paths.openFolder(dir, dir).catch(() => null);
    if (!folder) {
      this.prepared.delete(dir);
      return;
    }
    try {
      // A folder with its own .git is a repository's top (no git process needed to say so).
      if (await folder.lstat('.git')) return;
      if (await this.repoOf(dir)) return;
      await this.run(['init', '-q'], folder.at());
      if (dir === this.paths.root) {
        // The executor's own files are not the agent's work.
        const info = await this.paths.openFolder(join(dir, '.git', 'info'), dir, true);
        try {
          const exclude = await open(info.at('exclude'), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
          await exclude.appendFile(`/${BERTH_DIR}/\n`).finally(() => exclude.close());
        } finally {
          await info.close();
        }
      }
    } finally {
      await folder.close();
    }
  }

  /** Resolves an explicit ref (or commit) to a commit; `HEAD` without commits is the empty tree. */
  private async resolveRef(repo: string, ref: string): Promise<string> {
    try {
      return await this.text(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], repo);
    } catch (err) {
      if (ref === 'HEAD') return GIT_EMPTY_TREE;
      throw new HttpError(400, `Unknown git reference ${ref}: ${(err as Error).message}`);
    }
  }

  /**
   * The base OpenHands shows a conversation's changes against (its "display" policy): the current
   * branch's upstream (unless it is HEAD with a clean tree), else the fork point from the remote
   * default branch, else a local main/master this branch forked from, else HEAD; the empty tree
   * without commits. (OpenHands also asks the remote with `git remote show origin`; Berth does not
   * go to the network.)
   */
  private async displayBase(repo: string): Promise<string> {
    const any = await this.tryText(['rev-list', '-n', '1', '--all'], repo);
    if (!any) return GIT_EMPTY_TREE;
    const head = await this.tryText(['rev-parse', '--verify', '--quiet', 'HEAD'], repo);
    const branchName = await this.tryText(['rev-parse', '--abbrev-ref', 'HEAD'], repo);
    const branch = branchName && branchName !== 'HEAD' ? branchName : null;
    if (branch) {
      const upstream = await this.tryText(['rev-parse', '--verify', '--quiet', `origin/${branch}^{commit}`], repo);
      if (upstream) {
        const dirty = await this.tryText(['status', '--porcelain', '--untracked-files=no'], repo);
        if (upstream !== head || dirty !== '') return upstream;
      }
    }
    const originHead = await this.tryText(['rev-parse', '--abbrev-ref', 'origin/HEAD'], repo);
    const defaultBranch = originHead?.startsWith('origin/') && originHead.length > 7 ? originHead.slice(7) : null;
    if (defaultBranch) {
      const forkPoint = await this.tryText(['merge-base', 'HEAD', `origin/${defaultBranch}`], repo);
      if (forkPoint) return forkPoint;
      const tip = await this.tryText(['rev-parse', '--verify', '--quiet', `origin/${defaultBranch}^{commit}`], repo);
      if (tip) return tip;
    } else {
      for (const local of ['main', 'master']) {
        const sha = await this.tryText(['rev-parse', '--verify', '--quiet', `refs/heads/${local}^{commit}`], repo);
        if (!sha) continue;
        if (local !== branch) {
          const forkPoint = await this.tryText(['merge-base', 'HEAD', local], repo);
          if (forkPoint && forkPoint === sha) return sha;
        }
        break;
      }
    }
    return head ?? GIT_EMPTY_TREE;
  }

  private base(repo: string, ref: string | undefined): Promise<string> {
    return ref === undefined ? this.displayBase(repo) : this.resolveRef(repo, ref);
  }

  /** Changes of the repository at `dir` (paths relative to `dir`, limited to it) against `ref`. */
  private async changesIn(dir: string, ref: string | undefined): Promise<GitChange[]> {
    const base = await this.base(dir, ref);
    const changes = parseNameStatus(await this.run(['diff', '--no-ext-diff', '--no-textconv', '--name-status', '-z', '--relative', base, '--'], dir));
    const untracked = (await this.run(['ls-files', '--others', '--exclude-standard', '-z'], dir)).toString('utf8').split('\0');
    for (const path of untracked) if (path) changes.push({ status: 'ADDED', path: posix(path) });
    return changes;
  }

  /** `GET /api/git/changes?path=&ref=`: `[]` when `path` is not in a repository. */
  async changes(path: string, ref: string | undefined): Promise<GitChange[]> {
    const dir = await this.paths.requireInside(path);
    // git runs in the opened folder (`/proc/self/fd/N`), never in a path named again after the check.
    const folder = await this.paths.openFolder(dir, path).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      return null;
    });
    if (!folder) return [];
    try {
      return await this.changesOf(folder, dir, ref);
    } finally {
      await folder.close();
    }
  }

  private async changesOf(folder: OpenFolder, dir: string, ref: string | undefined): Promise<GitChange[]> {
    // Repositories cloned right inside the folder count too (OpenHands looks one level down).
    const nested: string[] = [];
    for (const entry of await readdir(folder.at(), { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory() && (await lstat(join(folder.at(entry.name), '.git')).then(() => true, () => false))) nested.push(entry.name);
    }
    const inRepo = (await this.repoOf(dir)) !== null;
    if (!inRepo && nested.length === 0) return [];

    let changes: GitChange[] = [];
    const wrap = async <T>(work: () => Promise<T>): Promise<T> => {
      try {
        return await work();
      } catch (err) {
        if (err instanceof GitCommandError) throw new HttpError(400, err.message);
        throw err;
      }
    };
    if (inRepo) {
      const skipBerth = dir === this.paths.root;
      changes = (await wrap(() => this.changesIn(folder.at(), ref))).filter(
        (c) => !nested.some((n) => c.path === n || c.path.startsWith(`${n}/`)) && !(skipBerth && (c.path === BERTH_DIR || c.path.startsWith(`${BERTH_DIR}/`))),
      );
    }
    for (const name of nested) {
      const sub = await open(folder.at(name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).then(
        (handle) => new OpenFolder(handle),
        () => null,
      );
      if (!sub) continue;
      try {
        for (const change of await this.changesIn(sub.at(), ref)) changes.push({ status: change.status, path: `${name}/${change.path}` });
      } catch {
        /* not a usable repository: skipped, as OpenHands does */
      } finally {
        await sub.close();
      }
    }
    return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /**
   * `GET /api/git/diff?path=&ref=|commit=`: the file's current content and its content at the base
   * (`""` where there is none, or it is binary); both null outside a repository or for a file over 1 MiB.
   */
  async diff(path: string, ref: string | undefined, commit: string | undefined): Promise<GitDiff> {
    const file = await this.paths.requireInside(path);
    if (commit !== undefined) return this.commitFileDiff(path, file, commit);
    // The file is read from the descriptor opened here, git runs in the opened repository folder.
    const handle = await this.paths.openFile(file, path, constants.O_RDONLY | constants.O_NONBLOCK).catch((err: unknown) => {
      if (err instanceof HttpError || !['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      return null;
    });
    try {
      const info = handle && (await handle.stat());
      if (info?.isDirectory()) throw new HttpError(400, 'Path is a directory');
      if (info && info.size > MAX_DIFF_FILE_BYTES) return { modified: null, original: null };
      const repo = await this.repoOf(dirname(file));
      if (!repo) return { modified: null, original: null };
      const repoFolder = await this.paths.openFolder(repo, path);
      // As OpenHands: a side the file lacks (added, deleted, binary) is "".
      let original = '';
      try {
        let base: string;
        try {
          base = await this.base(repoFolder.at(), ref);
        } catch (err) {
          if (err instanceof GitCommandError) throw new HttpError(400, err.message);
          throw err;
        }
        if (base !== GIT_EMPTY_TREE) {
          const inRepo = posix(relative(repo, file));
          const shown = await this.run(['show', '--no-textconv', `${base}:${inRepo}`], repoFolder.at()).catch(() => null);
          const text = shown && decodeText(shown);
          original = text === null || text === undefined ? '' : normalizeContent(text);
        }
      } finally {
        await repoFolder.close();
      }
      let modified = '';
      if (handle && info?.isFile()) {
        const text = decodeText(await handle.readFile());
        modified = text === null ? '' : normalizeContent(text);
      }
      return { modified, original };
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /**
   * The real folder `dir` (inside the sandbox) opened, when it is a folder in a git repository;
   * null when it is missing, not a folder, or in no repository (as OpenHands: not a repository).
   */
  private async openRepo(dir: string, shown: string): Promise<OpenFolder | null> {
    const folder = await this.paths.openFolder(dir, shown).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      return null;
    });
    if (!folder) return null;
    if (await this.repoOf(dir)) return folder;
    await folder.close();
    return null;
  }

  /** A commit as `rev-parse` names it in full; an unknown one is the client's error (400). */
  private async resolveCommit(cwd: string, commit: string): Promise<string> {
    try {
      return await this.text(['rev-parse', '--verify', '--end-of-options', `${commit}^{commit}`], cwd);
    } catch (err) {
      if (err instanceof GitCommandError) throw new HttpError(400, `Git command failed: git rev-parse --verify '${commit}^{commit}'`);
      throw err;
    }
  }

  /** The first parent of a commit, or the empty tree for a root commit. */
  private async parentOf(cwd: string, sha: string): Promise<string> {
    return (await this.tryText(['rev-parse', '--verify', '--quiet', '--end-of-options', `${sha}^`], cwd)) ?? GIT_EMPTY_TREE;
  }

  /**
   * `GET /api/git/commits?path=&limit=`: the most recent commits reachable from HEAD, newest first
   * (the branch's plain history, as a Git host's Commits page shows it). An empty page outside a
   * repository or before the first commit.
   */
  async commits(path: string, limit: number): Promise<GitCommitsPage> {
    const dir = await this.paths.requireInside(path);
    const repo = await this.openRepo(dir, path);
    if (!repo) return { commits: [], has_more: false };
    try {
      const head = await this.tryText(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], repo.at());
      if (!head) return { commits: [], has_more: false };
      let output: string;
      try {
        output = (await this.run(['log', '--no-show-signature', `--format=${LOG_FORMAT}`, '-n', String(limit + 1), head, '--'], repo.at())).toString('utf8');
      } catch (err) {
        if (err instanceof GitCommandError) throw new HttpError(400, err.message);
        throw err;
      }
      const commits: GitCommit[] = [];
      for (const line of output.split('\n')) {
        const fields = line.split('\x1f');
        if (fields.length !== 5) continue;
        const [sha, short_sha, author, timestamp, subject] = fields;
        commits.push({ sha, short_sha, subject, author, timestamp });
      }
      return { commits: commits.slice(0, limit), has_more: commits.length > limit };
    } finally {
      await repo.close();
    }
  }

  /**
   * `GET /api/git/commits/{sha}/changes?path=`: the files one commit changed against its first
   * parent (a root commit: all added), paths relative to the repository; `[]` outside a repository.
   */
  async commitChanges(path: string, sha: string): Promise<GitChange[]> {
    const dir = await this.paths.requireInside(path);
    const repo = await this.openRepo(dir, path);
    if (!repo) return [];
    try {
      const commit = await this.resolveCommit(repo.at(), sha);
      const parent = await this.parentOf(repo.at(), commit);
      try {
        return parseNameStatus(await this.run(['diff', '--no-ext-diff', '--no-textconv', '--name-status', '-z', parent, commit, '--'], repo.at()));
      } catch (err) {
        if (err instanceof GitCommandError) throw new HttpError(400, err.message);
        throw err;
      }
    } finally {
      await repo.close();
    }
  }

  /**
   * `GET /api/git/diff?path=&commit=`: one file as a commit changed it, both sides read from git
   * objects (never from disk, so a file deleted since still renders): `original` at the commit's
   * first parent, `modified` at the commit, `""` for a side where the file is not.
   */
  private async commitFileDiff(shown: string, file: string, commit: string): Promise<GitDiff> {
    const repoDir = await this.repoOf(dirname(file));
    if (!repoDir) return { modified: null, original: null };
    const repo = await this.openRepo(repoDir, shown);
    if (!repo) return { modified: null, original: null };
    try {
      const sha = await this.resolveCommit(repo.at(), commit);
      const parent = await this.parentOf(repo.at(), sha);
      const inRepo = posix(relative(repoDir, file));
      if (inRepo === '' || inRepo.startsWith('../')) throw new HttpError(400, `File is not within git repository: ${shown}`);
      const original = await this.showAt(repo.at(), parent, inRepo);
      const modified = await this.showAt(repo.at(), sha, inRepo);
      return { modified, original };
    } finally {
      await repo.close();
    }
  }

  /** A file's content at a revision: `""` where it is not, null when not text, 400 over 1 MiB. */
  private async showAt(cwd: string, rev: string, inRepo: string): Promise<string | null> {
    if (rev === GIT_EMPTY_TREE) return '';
    const spec = `${rev}:${inRepo}`;
    const size = await this.tryText(['cat-file', '-s', spec], cwd);
    if (size === null) return '';
    if (Number(size) > MAX_DIFF_FILE_BYTES) throw new HttpError(400, `File too large for git diff: ${size} bytes (max: ${MAX_DIFF_FILE_BYTES} bytes)`);
    const shownBytes = await this.run(['cat-file', 'blob', spec], cwd).catch(() => null);
    if (shownBytes === null) return '';
    const text = decodeText(shownBytes);
    return text === null ? null : normalizeContent(text);
  }

  // -------------------------------------------------------------------------------------------
  // Workspace export (`GET /api/file/archive?format=git-delta`)

  /** Whether the folder `cwd` lies in a git work tree (as `rev-parse --git-dir` says). */
  async isRepo(cwd: string): Promise<boolean> {
    return (await this.tryText(['rev-parse', '--git-dir'], cwd)) !== null;
  }

  /**
   * The base an export patch applies to (OpenHands' "export" policy: bases a fresh clone has):
   * an explicit ref (`HEAD` without commits: the empty tree; another unknown ref: 400), else the
   * current branch's `origin/<branch>`, the remote default branch, the fork point from it, else
   * the empty tree. A detached HEAD (a pinned checkout) exports against HEAD.
   */
  async exportBase(cwd: string, override: string | undefined): Promise<string> {
    let wanted = override;
    if (wanted === undefined && (await this.tryText(['rev-parse', '--abbrev-ref', 'HEAD'], cwd)) === 'HEAD') wanted = 'HEAD';
    if (wanted !== undefined) {
      const sha = await this.tryText(['rev-parse', '--verify', '--quiet', '--end-of-options', `${wanted}^{commit}`], cwd);
      if (sha) return sha;
      if (wanted === 'HEAD') return GIT_EMPTY_TREE;
      throw new HttpError(400, `base_ref '${override}' could not be resolved`);
    }
    if (!(await this.tryText(['rev-list', '-n', '1', '--all'], cwd))) return GIT_EMPTY_TREE;
    const candidates: string[] = [];
    const branch = await this.tryText(['rev-parse', '--abbrev-ref', 'HEAD'], cwd);
    if (branch && branch !== 'HEAD') candidates.push(`refs/remotes/origin/${branch}`);
    const originHead = await this.tryText(['rev-parse', '--abbrev-ref', 'origin/HEAD'], cwd);
    if (originHead?.startsWith('origin/') && originHead.length > 7) {
      candidates.push(`refs/remotes/${originHead}`);
      const forkPoint = await this.tryText(['merge-base', 'HEAD', `refs/remotes/${originHead}`], cwd);
      if (forkPoint) candidates.push(forkPoint);
    }
    for (const candidate of candidates) {
      const sha = await this.tryText(['rev-parse', '--verify', '--quiet', '--end-of-options', `${candidate}^{commit}`], cwd);
      if (sha) return sha;
    }
    return GIT_EMPTY_TREE;
  }

  /**
   * Writes to `fd` a binary patch of the working tree under `cwd` against `base`: tracked changes,
   * new files and deletions, `pathspecs` excluded. A scratch index (`index`, a path outside the
   * sandbox) is used, so the repository's own index is never touched.
   */
  async writeDelta(cwd: string, base: string, fd: number, pathspecs: string[], index: string): Promise<void> {
    const env = { GIT_INDEX_FILE: index };
    await this.run(['read-tree', base], cwd, { env, timeoutMs: 60_000 });
    await this.run(['add', '-A', '--', '.', ...pathspecs], cwd, { env, timeoutMs: 300_000 });
    await this.runTo(['diff', '--no-ext-diff', '--no-textconv', '--binary', '--cached', base, '--', '.', ...pathspecs], cwd, fd, { env, timeoutMs: 300_000 });
  }

  /** What identifies a repository: its origin (credentials redacted), branch (`DETACHED`) and HEAD. */
  async metadata(cwd: string): Promise<{ repo_remote?: string; branch?: string; head_commit?: string }> {
    const out: { repo_remote?: string; branch?: string; head_commit?: string } = {};
    const remote = await this.tryText(['remote', 'get-url', 'origin'], cwd);
    if (remote) out.repo_remote = redactRemote(remote);
    const lines = (await this.tryText(['rev-parse', 'HEAD', '--abbrev-ref', 'HEAD'], cwd))?.split('\n') ?? [];
    if (lines.length === 2) {
      out.head_commit = lines[0];
      out.branch = lines[1] === 'HEAD' ? 'DETACHED' : lines[1];
    }
    return out;
  }
}

/** A remote URL without its credentials (`https://****@host/…`) nor its query values. */
export function redactRemote(url: string): string {
  const withoutUser = url.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1****@');
  const q = withoutUser.indexOf('?');
  if (q < 0) return withoutUser;
  const query = withoutUser
    .slice(q + 1)
    .split('&')
    .map((pair) => (pair.includes('=') ? `${pair.slice(0, pair.indexOf('='))}=%3Credacted%3E` : pair))
    .join('&');
  return `${withoutUser.slice(0, q)}?${query}`;
}
