import { constants, Stats } from 'node:fs';
import { FileHandle, lstat, mkdir, open, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { HttpError } from './errors';

/** The executor's own files inside the sandbox: `<root>/.berth/…`. */
export const BERTH_DIR = '.berth';

const MAX_SYMLINK_HOPS = 40;
const MAX_CREATE_ATTEMPTS = 3;

/**
 * Where a path really leads — symlinks followed, even dangling ones — when parts of it do not
 * exist yet: the real path of its nearest existing ancestor joined with the rest.
 */
export async function resolveReal(path: string, hops = 0): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
  }
  const parent = dirname(abs);
  if (parent === abs) return abs;
  const stat = await lstat(abs).catch(() => null);
  if (stat?.isSymbolicLink()) {
    // A dangling link: what it points at is where a write would land.
    if (hops >= MAX_SYMLINK_HOPS) throw Object.assign(new Error(`Too many levels of symbolic links: ${abs}`), { code: 'ELOOP' });
    const target = await readlink(abs);
    return resolveReal(resolve(await resolveReal(parent, hops + 1), target), hops + 1);
  }
  return join(await resolveReal(parent, hops), basename(abs));
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/**
 * A folder of the sandbox held open. What is named through it (`/proc/self/fd/<fd>/<name>`)
 * is looked up in that folder itself, whatever is renamed or swapped for a symlink on the way
 * to it meanwhile.
 */
export class OpenFolder {
  constructor(readonly handle: FileHandle) {}

  /** `name` (one path component, or nothing for the folder itself) in this folder. */
  at(name = ''): string {
    return name === '' ? `/proc/self/fd/${this.handle.fd}` : `/proc/self/fd/${this.handle.fd}/${name}`;
  }

  /** What `name` in this folder is (a symlink itself, not what it points at), or null. */
  lstat(name: string): Promise<Stats | null> {
    return lstat(this.at(name)).catch(() => null);
  }

  close(): Promise<void> {
    return this.handle.close().catch(() => undefined);
  }
}

/** Confines tool paths to the sandbox root. */
export class SandboxPaths {
  constructor(readonly root: string) {}

  contains(realPath: string): boolean {
    return realPath === this.root || realPath.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }

  /** The real path of `path` and whether it lies inside the root. */
  async locate(path: string): Promise<{ real: string; inside: boolean }> {
    const real = await resolveReal(path);
    return { real, inside: this.contains(real) };
  }

  /**
   * The real path of a path given to the workspace API (files, git, bash cwd): it must be absolute
   * (400 `Path must be absolute`) and resolve inside the root, symlinks followed, even dangling ones
   * (403 `Path is outside the sandbox: <path>`).
   */
  async requireInside(path: string): Promise<string> {
    if (!isAbsolute(path)) throw new HttpError(400, 'Path must be absolute');
    if (path.includes('\0')) throw new HttpError(400, 'Path must not contain NUL bytes');
    let real: string;
    try {
      real = await resolveReal(path);
    } catch (err) {
      throw new HttpError(400, `Path cannot be resolved: ${(err as Error).message}`);
    }
    if (!this.contains(real)) throw new HttpError(403, `Path is outside the sandbox: ${path}`);
    return real;
  }

  /**
   * Opens the folder at `real` (a real path inside the root, as `requireInside` gives) by walking
   * down from the root one component at a time, never following a symlink: a folder swapped for
   * a symlink after the path was checked is refused (403 `Path is outside the sandbox: <shown>`),
   * never followed out. With `create`, missing folders are made on the way (mkdir -p), each in
   * the folder opened before it. A component that is not a folder fails with ENOTDIR, a missing
   * one (without `create`) with ENOENT.
   */
  async openFolder(real: string, shown: string, create = false): Promise<OpenFolder> {
    if (!this.contains(real)) throw new HttpError(403, `Path is outside the sandbox: ${shown}`);
    const parts = real === this.root ? [] : relative(this.root, real).split(sep);
    if (parts.some((part) => part === '' || part === '.' || part === '..')) throw new HttpError(403, `Path is outside the sandbox: ${shown}`);
    let folder = new OpenFolder(await open(this.root, constants.O_RDONLY | constants.O_DIRECTORY));
    try {
      for (const part of parts) {
        const next = await this.openChild(folder, part, shown, create);
        await folder.close();
        folder = new OpenFolder(next);
      }
      return folder;
    } catch (err) {
      await folder.close();
      throw err;
    }
  }

  /** One step of openFolder; with `create`, a folder removed between mkdir and open is made again (a few times). */
  private async openChild(folder: OpenFolder, part: string, shown: string, create: boolean): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      if (create) await mkdir(folder.at(part)).catch((err) => (errno(err) === 'EEXIST' ? undefined : Promise.reject(err)));
      try {
        return await open(folder.at(part), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      } catch (err) {
        if (errno(err) === 'ELOOP' || (errno(err) === 'ENOTDIR' && (await folder.lstat(part))?.isSymbolicLink())) {
          throw new HttpError(403, `Path is outside the sandbox: ${shown}`);
        }
        if (!create || errno(err) !== 'ENOENT' || attempt >= MAX_CREATE_ATTEMPTS) throw err;
      }
    }
  }

  /** The folder holding `real` opened as `openFolder` does (made first with `create`), and the name in it. */
  async openParent(real: string, shown: string, create = false): Promise<{ folder: OpenFolder; name: string }> {
    if (real === this.root) throw Object.assign(new Error(`The sandbox root is not a file: ${shown}`), { code: 'EISDIR' });
    return { folder: await this.openFolder(dirname(real), shown, create), name: basename(real) };
  }

  /**
   * Opens the file (or folder) at `real` with `flags` through its folder (see `openFolder`),
   * its last component never followed either (a symlink there: 403). Reads open with O_NONBLOCK,
   * so a FIFO put in place answers at once instead of holding a thread.
   */
  async openFile(real: string, shown: string, flags: number, mode?: number): Promise<FileHandle> {
    const outside = () => new HttpError(403, `Path is outside the sandbox: ${shown}`);
    if (real === this.root) return open(this.root, flags, mode);
    const { folder, name } = await this.openParent(real, shown);
    try {
      return await open(folder.at(name), flags | constants.O_NOFOLLOW, mode).catch(async (err) => {
        if (errno(err) === 'ELOOP') throw outside();
        if (errno(err) === 'ENOTDIR' && (await lstat(folder.at(name)).catch(() => null))?.isSymbolicLink()) throw outside();
        throw err;
      });
    } finally {
      await folder.close();
    }
  }

  /**
   * Whether an open descriptor (opened following symlinks) really lies inside the root: its
   * `/proc/self/fd` link names the object opened, not the path it was opened by.
   */
  async holds(handle: FileHandle): Promise<boolean> {
    const real = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => null);
    return real !== null && this.contains(real);
  }

  /** `<root>/.berth/<parts…>` */
  internal(...parts: string[]): string {
    return join(this.root, BERTH_DIR, ...parts);
  }
}
