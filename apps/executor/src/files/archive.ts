import { ArchiveFormat, FileArchiveQuery } from '@berth/contracts/executor';
import { randomBytes } from 'node:crypto';
import { constants, Stats } from 'node:fs';
import { FileHandle, lstat, mkdtemp, open, readdir, rm, unlink } from 'node:fs/promises';
import { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { HttpError } from '../errors';
import { GIT_EMPTY_TREE, GitCommandError, GitService } from '../git/git';
import { BERTH_DIR, OpenFolder, SandboxPaths } from '../sandbox-paths';
import { attachmentDisposition } from './files';

/**
 * What a workspace archive leaves out unless `use_default_excludes=false` (OpenHands' list): heavy
 * or generated folders that do not help a replay.
 */
export const DEFAULT_ARCHIVE_EXCLUDES = [
  '.git/',
  'node_modules/',
  '.venv/',
  'venv/',
  '__pycache__/',
  '.mypy_cache/',
  '.pytest_cache/',
  '.ruff_cache/',
  'dist/',
  'build/',
  '.next/',
  'target/',
  '*.pyc',
];

/** Credential-bearing files of any `.git` folder, never archived, even for a full capture. */
const SENSITIVE_GIT_INTERNALS = new Set(['config', 'config.worktree', 'credentials', '.git-credentials', 'FETCH_HEAD']);
/** Folders never searched for the repository to archive (vendored repositories live there). */
const DESCENT_SKIP = new Set(['node_modules', 'venv', 'site-packages', 'vendor']);
const MAX_REPO_SEARCH_DEPTH = 3;
const MANIFEST_NAME = 'archive_manifest.json';
const SUFFIX: Record<ArchiveFormat, string> = { 'git-delta': '.patch', 'tar.gz': '.tar.gz' };
/** Starlette adds the charset to a text/* media type. */
const MEDIA_TYPE: Record<ArchiveFormat, string> = { 'git-delta': 'text/x-patch; charset=utf-8', 'tar.gz': 'application/gzip' };
const COPY_BUFFER_BYTES = 256 * 1024;
/** A new file, never an existing one nor through a symlink. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/** Python's `fnmatch` pattern as a RegExp (`*` and `?` match any character, `[…]`/`[!…]` classes). */
export function fnmatchRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '!') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j++;
      if (j >= pattern.length) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, j).replace(/\\/g, '\\\\');
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      else if (body.startsWith('^')) body = `\\${body}`;
      out += `[${body}]`;
      i = j;
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}

const patternCache = new Map<string, RegExp>();
function fnmatch(name: string, pattern: string): boolean {
  let re = patternCache.get(pattern);
  if (!re) {
    re = fnmatchRegExp(pattern);
    if (patternCache.size > 1000) patternCache.clear();
    patternCache.set(pattern, re);
  }
  return re.test(name);
}

/**
 * Whether a path (its components, relative to the archived folder) is excluded, with gitignore's
 * reading as OpenHands applies it: a trailing `/` means folders only; a pattern with a `/` is
 * anchored at the archived folder, matched component by component, and covers what lies below;
 * a bare name matches any one component at any depth.
 */
export function pathIsExcluded(parts: string[], patterns: string[], isDir: boolean): boolean {
  for (const raw of patterns) {
    const dirOnly = raw.endsWith('/');
    const pattern = raw.replace(/\/+$/, '');
    if (pattern.includes('/')) {
      const patternParts = pattern.split('/');
      if (parts.length >= patternParts.length && patternParts.every((p, i) => fnmatch(parts[i], p))) {
        if (dirOnly && !isDir && parts.length === patternParts.length) continue;
        return true;
      }
    } else {
      const candidates = isDir || !dirOnly ? parts : parts.slice(0, -1);
      if (candidates.some((part) => fnmatch(part, pattern))) return true;
    }
  }
  return false;
}

/** A credential-bearing file inside any `.git` folder: its config, credentials, FETCH_HEAD, every reflog. */
export function isSensitiveGitInternal(parts: string[]): boolean {
  const at = parts.indexOf('.git');
  if (at < 0) return false;
  const internal = parts.slice(at + 1);
  if (internal.length === 0) return false;
  return internal.includes('logs') || SENSITIVE_GIT_INTERNALS.has(internal[internal.length - 1]);
}

/** The excludes as git `:(exclude)` pathspecs with the same reading (`*` within a component, `**` across). */
export function excludesToPathspecs(excludes: string[]): string[] {
  const specs: string[] = [];
  for (const raw of excludes) {
    const dirOnly = raw.endsWith('/');
    const pattern = raw.replace(/\/+$/, '');
    if (!pattern) continue;
    if (pattern.includes('/')) {
      if (!dirOnly) specs.push(`:(glob,exclude)${pattern}`);
      specs.push(`:(glob,exclude)${pattern}/**`);
    } else {
      if (!dirOnly) specs.push(`:(glob,exclude)**/${pattern}`);
      specs.push(`:(glob,exclude)**/${pattern}/**`);
    }
  }
  return specs;
}

/** Python's `urllib.parse.quote(value, safe="")`, for the X-Archive-* headers. */
function headerSafe(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// ---------------------------------------------------------------------------------------------
// tar (POSIX pax), written as a stream

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const size = Buffer.byteLength(body);
  // The record's length counts its own digits.
  let length = size + 1;
  while (size + String(length).length !== length) length = size + String(length).length;
  return Buffer.from(`${length}${body}`, 'utf8');
}

const MAX_OCTAL_SIZE = 0o77777777777;

/** A tar stream of folders and regular files; names too long or not ASCII go in a pax header. */
class TarWriter {
  constructor(private readonly out: Writable) {}

  private write(chunk: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.out.write(chunk)) return resolve();
      const onDrain = () => {
        this.out.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        this.out.off('drain', onDrain);
        reject(err);
      };
      this.out.once('drain', onDrain);
      this.out.once('error', onError);
    });
  }

  private header(name: string, type: '0' | '5' | 'x', size: number, info: { mode: number; uid: number; gid: number; mtime: number }): Buffer {
    const block = Buffer.alloc(512);
    block.write(name, 0, 100, 'utf8');
    block.write(octal(info.mode & 0o7777, 8), 100, 8, 'ascii');
    block.write(octal(info.uid & 0o7777777, 8), 108, 8, 'ascii');
    block.write(octal(info.gid & 0o7777777, 8), 116, 8, 'ascii');
    block.write(octal(Math.min(size, MAX_OCTAL_SIZE), 12), 124, 12, 'ascii');
    block.write(octal(Math.max(0, Math.min(info.mtime, MAX_OCTAL_SIZE)), 12), 136, 12, 'ascii');
    block.fill(' ', 148, 156);
    block.write(type, 156, 1, 'ascii');
    block.write('ustar\0', 257, 6, 'ascii');
    block.write('00', 263, 2, 'ascii');
    let sum = 0;
    for (const byte of block) sum += byte;
    block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
    return block;
  }

  private async entry(name: string, type: '0' | '5', size: number, info: { mode: number; uid: number; gid: number; mtime: number }): Promise<void> {
    const records: Buffer[] = [];
    // eslint-disable-next-line no-control-regex
    if (Buffer.byteLength(name) > 100 || /[^\x20-\x7e]/.test(name)) records.push(paxRecord('path', name));
    if (size > MAX_OCTAL_SIZE) records.push(paxRecord('size', String(size)));
    if (records.length > 0) {
      const pax = Buffer.concat(records);
      await this.write(this.header('././@PaxHeader', 'x', pax.length, { mode: 0o644, uid: 0, gid: 0, mtime: info.mtime }));
      await this.write(pax);
      await this.pad(pax.length);
    }
    // eslint-disable-next-line no-control-regex
    const shortName = Buffer.from(name.replace(/[^\x20-\x7e]/g, '_'), 'utf8').subarray(0, 100).toString('latin1');
    await this.write(this.header(shortName, type, size, info));
  }

  private async pad(size: number): Promise<void> {
    const rest = size % 512;
    if (rest) await this.write(Buffer.alloc(512 - rest));
  }

  async folder(name: string, stat: Stats): Promise<void> {
    await this.entry(name.endsWith('/') ? name : `${name}/`, '5', 0, { mode: stat.mode, uid: stat.uid, gid: stat.gid, mtime: Math.floor(stat.mtimeMs / 1000) });
  }

  /**
   * A regular file from its open descriptor: exactly the size its header declares (a file that
   * shrank meanwhile is padded with NULs, one that grew is cut), so the stream never shifts.
   */
  async file(name: string, handle: FileHandle, stat: Stats): Promise<void> {
    await this.entry(name, '0', stat.size, { mode: stat.mode, uid: stat.uid, gid: stat.gid, mtime: Math.floor(stat.mtimeMs / 1000) });
    const buffer = Buffer.allocUnsafe(COPY_BUFFER_BYTES);
    let left = stat.size;
    let position = 0;
    while (left > 0) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, left), position);
      if (bytesRead === 0) {
        await this.write(Buffer.alloc(Math.min(left, COPY_BUFFER_BYTES)));
        left -= Math.min(left, COPY_BUFFER_BYTES);
        continue;
      }
      await this.write(Buffer.from(buffer.subarray(0, bytesRead)));
      left -= bytesRead;
      position += bytesRead;
    }
    await this.pad(stat.size);
  }

  async bytes(name: string, data: Buffer, mtime: number): Promise<void> {
    await this.entry(name, '0', data.length, { mode: 0o644, uid: 0, gid: 0, mtime });
    await this.write(data);
    await this.pad(data.length);
  }

  /** The two zero blocks that end an archive. */
  async end(): Promise<void> {
    await this.write(Buffer.alloc(1024));
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * `GET /api/file/archive` (OpenHands' workspace export): a folder of the sandbox as a git patch of
 * its working tree (`git-delta`) or as a gzip tarball (`tar.gz`). Symlinks are never followed (not
 * archived, never walked through): nothing outside the folder gets in. The archive is written to
 * the sandbox's own `.berth/archives` (never a path in the folder archived), sent, and removed.
 */
export class ArchiveService {
  constructor(
    private readonly paths: SandboxPaths,
    private readonly git: GitService,
  ) {}

  async archive(res: ServerResponse, query: FileArchiveQuery): Promise<void> {
    const { path, format } = query;
    const real = await this.paths.requireInside(path);
    const target = await this.paths.openFolder(real, path).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      if (errno(err) === 'ENOENT') throw new HttpError(404, 'Directory not found');
      if (errno(err) === 'ENOTDIR') throw new HttpError(400, 'Path is not a directory');
      throw new HttpError(500, `Failed to archive directory: ${(err as Error).message}`);
    });
    let root: { folder: OpenFolder; real: string } = { folder: target, real };
    try {
      if (query.base_ref?.startsWith('-')) throw new HttpError(400, "base_ref must not start with '-'");
      const excludes = [...(query.use_default_excludes ? DEFAULT_ARCHIVE_EXCLUDES : []), ...query.exclude];
      root = await this.repositoryRoot(target, real, path);
      const output = await this.scratchFile(format);
      try {
        const headers: Record<string, string | number> = {};
        if (format === 'git-delta') {
          const base = await this.delta(root.folder, query.base_ref, output.handle, excludes, path);
          if (base) {
            headers['x-archive-base-commit'] = base;
            headers['x-archive-base-ref'] = query.base_ref ?? 'auto';
          }
        } else {
          await this.tarball(root.folder, root.real, output.handle, excludes);
        }
        if (await root.folder.lstat('.git')) {
          const metadata = await this.git.metadata(root.folder.at());
          if (metadata.repo_remote) headers['x-archive-repo-remote'] = headerSafe(metadata.repo_remote);
          if (metadata.branch) headers['x-archive-branch'] = headerSafe(metadata.branch);
          if (metadata.head_commit) headers['x-archive-head-commit'] = headerSafe(metadata.head_commit);
          headers['x-archive-repo-root'] = headerSafe(root.real);
        }
        await this.send(res, output.handle, `${basename(root.real)}${SUFFIX[format]}`, format, headers);
      } finally {
        await output.handle.close().catch(() => undefined);
      }
    } finally {
      if (root.folder !== target) await root.folder.close();
      await target.close();
    }
  }

  /**
   * The folder to archive: `target` itself when it is a repository's top or holds no single
   * repository; the one repository found up to three levels below it (hidden and vendored folders
   * skipped, symlinks never followed) otherwise, where a repo-backed conversation clones.
   */
  private async repositoryRoot(target: OpenFolder, real: string, shown: string): Promise<{ folder: OpenFolder; real: string }> {
    if (await target.lstat('.git')) return { folder: target, real };
    const found: string[] = [];
    const frontier: { rel: string; depth: number }[] = [{ rel: '', depth: 0 }];
    while (frontier.length > 0) {
      const { rel, depth } = frontier.pop()!;
      if (depth >= MAX_REPO_SEARCH_DEPTH) continue;
      const names = (await readdir(target.at(rel)).catch(() => [] as string[])).sort();
      for (const name of names) {
        if (name.startsWith('.') || DESCENT_SKIP.has(name)) continue;
        const child = rel ? `${rel}/${name}` : name;
        const info = await lstat(target.at(child)).catch(() => null);
        if (!info?.isDirectory()) continue;
        if (await lstat(target.at(`${child}/.git`)).then(() => true, () => false)) {
          found.push(child);
          // Several: no guessing which one is meant.
          if (found.length > 1) return { folder: target, real };
        } else frontier.push({ rel: child, depth: depth + 1 });
      }
    }
    if (found.length !== 1) return { folder: target, real };
    const repoReal = join(real, found[0]);
    return { folder: await this.paths.openFolder(repoReal, shown), real: repoReal };
  }

  /** A new file in `.berth/archives`, already unlinked: it goes away with its descriptor, whatever happens. */
  private async scratchFile(format: ArchiveFormat): Promise<{ handle: FileHandle }> {
    const folder = await this.paths.openFolder(this.paths.internal('archives'), this.paths.internal('archives'), true);
    try {
      const name = `${randomBytes(8).toString('hex')}${SUFFIX[format]}`;
      const handle = await open(folder.at(name), CREATE_NEW, 0o600);
      await unlink(folder.at(name)).catch(() => undefined);
      return { handle };
    } finally {
      await folder.close();
    }
  }

  /** The git patch of the folder's working tree; the full sha of its base ('' for the empty tree). */
  private async delta(folder: OpenFolder, baseRef: string | undefined, out: FileHandle, excludes: string[], shown: string): Promise<string> {
    const cwd = folder.at();
    if (!(await this.git.isRepo(cwd))) throw new HttpError(400, `Not a git repository: ${shown}`);
    const base = await this.git.exportBase(cwd, baseRef);
    // The scratch index lives outside the sandbox, in a folder of the executor's own.
    const scratch = await mkdtemp(join(tmpdir(), 'berth-archive-'));
    try {
      await this.git.writeDelta(cwd, base, out.fd, excludesToPathspecs(excludes), join(scratch, 'index'));
    } catch (err) {
      if (err instanceof GitCommandError) throw new HttpError(500, `Failed to generate git delta: ${err.message}`);
      throw err;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    return base === GIT_EMPTY_TREE ? '' : base;
  }

  /** The gzip tarball of the folder: its folders and regular files under `<name>/`, and a manifest. */
  private async tarball(folder: OpenFolder, real: string, out: FileHandle, excludes: string[]): Promise<void> {
    const gzip = createGzip();
    const file = out.createWriteStream({ autoClose: false, start: 0 });
    const written = new Promise<void>((resolve, reject) => {
      file.on('finish', resolve);
      file.on('error', reject);
      gzip.on('error', reject);
    });
    gzip.pipe(file);
    const tar = new TarWriter(gzip);
    const top = basename(real);
    const counts = { files: 0, bytes: 0, manifestTaken: false };
    const manifestName = `${top}/${MANIFEST_NAME}`;
    const walk = async (dir: OpenFolder, parts: string[]): Promise<void> => {
      const info = await dir.handle.stat().catch(() => null);
      if (info) await tar.folder(parts.length ? `${top}/${parts.join('/')}` : top, info);
      const entries = (await readdir(dir.at(), { withFileTypes: true }).catch(() => [])).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      // The executor's own files are not the workspace.
      const skipBerth = parts.length === 0 && real === this.paths.root;
      const folders: string[] = [];
      for (const entry of entries) {
        if (skipBerth && entry.name === BERTH_DIR) continue;
        const rel = [...parts, entry.name];
        if (entry.isDirectory()) {
          if (!pathIsExcluded(rel, excludes, true) && !isSensitiveGitInternal(rel)) folders.push(entry.name);
          continue;
        }
        if (!entry.isFile() || pathIsExcluded(rel, excludes, false) || isSensitiveGitInternal(rel)) continue;
        // Opened without following a symlink put in its place meanwhile; only a regular file is taken.
        const handle = await open(dir.at(entry.name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
        if (!handle) continue;
        try {
          const stat = await handle.stat();
          if (!stat.isFile()) continue;
          const name = `${top}/${rel.join('/')}`;
          await tar.file(name, handle, stat);
          if (name === manifestName) counts.manifestTaken = true;
          counts.files++;
          counts.bytes += stat.size;
        } finally {
          await handle.close().catch(() => undefined);
        }
      }
      for (const name of folders) {
        const sub = await open(dir.at(name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).then(
          (handle) => new OpenFolder(handle),
          () => null,
        );
        if (!sub) continue;
        try {
          await walk(sub, [...parts, name]);
        } finally {
          await sub.close();
        }
      }
    };
    try {
      await walk(folder, []);
      // The workspace's own file of that name wins over the manifest.
      if (!counts.manifestTaken) {
        const manifest = { excludes, file_count: counts.files, format: 'tar.gz', source: top, total_bytes: counts.bytes };
        await tar.bytes(manifestName, Buffer.from(JSON.stringify(manifest, null, 2), 'utf8'), 0);
      }
      await tar.end();
      gzip.end();
      await written;
    } catch (err) {
      gzip.destroy();
      throw new HttpError(500, `Failed to archive directory: ${(err as Error).message}`);
    }
  }

  private async send(res: ServerResponse, handle: FileHandle, filename: string, format: ArchiveFormat, headers: Record<string, string | number>): Promise<void> {
    const info = await handle.stat();
    res.writeHead(200, {
      'content-type': MEDIA_TYPE[format],
      'content-length': info.size,
      'content-disposition': attachmentDisposition(filename),
      'last-modified': info.mtime.toUTCString(),
      ...headers,
    });
    const buffer = Buffer.allocUnsafe(COPY_BUFFER_BYTES);
    let position = 0;
    try {
      while (position < info.size && !res.destroyed) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        await new Promise<void>((resolve, reject) => res.write(buffer.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve())));
      }
      if (position < info.size) res.destroy();
      else res.end();
    } catch {
      res.destroy();
    }
  }
}
