import { lstat, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { HttpError } from './errors';

/** The executor's own files inside the sandbox: `<root>/.berth/…`. */
export const BERTH_DIR = '.berth';

const MAX_SYMLINK_HOPS = 40;

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

  /** `<root>/.berth/<parts…>` */
  internal(...parts: string[]): string {
    return join(this.root, BERTH_DIR, ...parts);
  }
}
