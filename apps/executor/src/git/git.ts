import { GitChange, GitChangeStatus, GitDiff } from '@berth/contracts';
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { HttpError } from '../errors';
import { BERTH_DIR, OpenFolder, SandboxPaths } from '../sandbox-paths';

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

  run(args: string[], cwd: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      // The repository's own config must not make the executor run programs (hooks never run here).
      execFile('git', [...SAFE_CONFIG, ...args], { cwd, env: this.env, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024, timeout: GIT_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err) return reject(new GitCommandError(args, stderr.toString('utf8').trim() || err.message));
        resolve(stdout);
      });
    });
  }

  private async text(args: string[], cwd: string): Promise<string> {
    return (await this.run(args, cwd)).toString('utf8').trim();
  }

  private async tryText(args: string[], cwd: string): Promise<string | null> {
    try {
      return await this.text(args, cwd);
    } catch {
      return null;
    }
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
        process.stderr.write(`berth executor: git init ${dir} failed: ${err.message}\n`);
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
    const changes: GitChange[] = [];
    const add = (status: GitChangeStatus, path: string) => changes.push({ status, path: posix(path) });
    const fields = (await this.run(['diff', '--no-ext-diff', '--no-textconv', '--name-status', '-z', '--relative', base, '--'], dir)).toString('utf8').split('\0');
    for (let i = 0; i < fields.length && fields[i] !== ''; ) {
      const code = fields[i++];
      if (code.startsWith('R')) {
        // A rename shows as the old path deleted and the new one added, as OpenHands reports it.
        add('DELETED', fields[i++]);
        add('ADDED', fields[i++]);
      } else if (code.startsWith('C')) {
        i++;
        add('ADDED', fields[i++]);
      } else {
        const path = fields[i++];
        add(code === 'A' ? 'ADDED' : code === 'D' ? 'DELETED' : 'UPDATED', path);
      }
    }
    const untracked = (await this.run(['ls-files', '--others', '--exclude-standard', '-z'], dir)).toString('utf8').split('\0');
    for (const path of untracked) if (path) add('ADDED', path);
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
   * (null where there is none); both null outside a repository or for a file over 1 MiB.
   */
  async diff(path: string, ref: string | undefined, commit: string | undefined): Promise<GitDiff> {
    const file = await this.paths.requireInside(path);
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
      let original: string | null = null;
      try {
        let base: string;
        try {
          base = await this.base(repoFolder.at(), commit ?? ref);
        } catch (err) {
          if (err instanceof GitCommandError) throw new HttpError(400, err.message);
          throw err;
        }
        if (base !== GIT_EMPTY_TREE) {
          const inRepo = posix(relative(repo, file));
          const shown = await this.run(['show', '--no-textconv', `${base}:${inRepo}`], repoFolder.at()).catch(() => null);
          const text = shown && decodeText(shown);
          original = text === null || text === undefined ? null : normalizeContent(text);
        }
      } finally {
        await repoFolder.close();
      }
      let modified: string | null = null;
      if (handle && info?.isFile()) {
        const text = decodeText(await handle.readFile());
        modified = text === null ? null : normalizeContent(text);
      }
      return { modified, original };
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }
}
