import { FileBrowserEntry, FileHome, SearchSubdirsQuery, SubdirectoryPage } from '@berth/contracts/executor';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, rename, unlink } from 'node:fs/promises';
import { IncomingMessage, ServerResponse } from 'node:http';
import { basename, join } from 'node:path';
import { HttpError } from '../errors';
import { StreamGarbage } from '../memory';
import { BERTH_DIR, OpenFolder, SandboxPaths } from '../sandbox-paths';
import { multipartBoundary, MultipartError, parseMultipart } from './multipart';

const MAX_FAVORITES = 50;
const DOWNLOAD_BUFFER_BYTES = 256 * 1024;
const UPLOAD_BUFFER_BYTES = 1024 * 1024;
/** What a multipart body may carry beyond the file itself (headers, boundaries, small fields). */
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;
/** An upload that sends nothing for this long is dropped. */
const UPLOAD_IDLE_MS = 120_000;
/** After a refused upload, this much of the rest of the body is read (and dropped) so the client sees the answer. */
const DRAIN_AFTER_REFUSAL_BYTES = 64 * 1024 * 1024;
/** A new file, never an existing one nor through a symlink. */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** `urllib.parse.quote` (what Starlette puts in `filename*=`): everything but `A-Za-z0-9_.-~/` escaped. */
function pyQuote(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Starlette's FileResponse Content-Disposition. */
export function attachmentDisposition(filename: string): string {
  const quoted = pyQuote(filename);
  return quoted === filename ? `attachment; filename="${filename}"` : `attachment; filename*=utf-8''${quoted}`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/**
 * A single `Range: bytes=a-b` (or `a-`, or `-n`) of a file of `size` bytes; undefined to send the
 * whole file (no header, several ranges, another unit), 'unsatisfiable' for a range past the end.
 */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  return start >= size ? 'unsatisfiable' : { start, end };
}

/** Async iteration over a request that leaves it readable (not destroyed) when the loop stops early. */
function chunksOf(req: IncomingMessage): AsyncIterable<Buffer> {
  return { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer> };
}

/**
 * `/api/file/*` (contract §3.5) confined to the sandbox root: uploads streamed to disk (multipart
 * field `file`, or the raw body) and renamed into place, downloads streamed from disk.
 */
export class FileService {
  constructor(
    private readonly paths: SandboxPaths,
    private readonly maxUploadBytes: number,
  ) {}

  /** `POST /api/file/upload?path=`: `{"success": true}` once the file is in place. */
  async upload(req: IncomingMessage, path: string): Promise<{ success: true; file_size: number }> {
    try {
      return await this.receive(req, path);
    } catch (err) {
      // The rest of the body is read (up to a point) so the client gets the answer, not a reset.
      if (!req.complete && !req.destroyed) {
        let drained = 0;
        req.on('data', (chunk: Buffer) => {
          drained += chunk.length;
          if (drained > DRAIN_AFTER_REFUSAL_BYTES) req.destroy();
        });
        req.resume();
      }
      throw err;
    } finally {
      req.setTimeout(0);
    }
  }

  private async receive(req: IncomingMessage, path: string): Promise<{ success: true; file_size: number }> {
    const target = await this.paths.requireInside(path);
    let boundary: string | null;
    try {
      boundary = multipartBoundary(req.headers['content-type']);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (boundary === null && declared > this.maxUploadBytes) throw this.tooLarge();

    if (target === this.paths.root) throw new HttpError(400, 'Path is a directory');
    // The folder is opened, not named again: a folder swapped for a symlink meanwhile is refused.
    const { folder, name } = await this.paths.openParent(target, path, true).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      if (errno(err) === 'EEXIST' || errno(err) === 'ENOTDIR') throw new HttpError(400, `Failed to upload file: a parent of ${path} is not a directory`);
      if (errno(err) === 'ENOENT') throw new HttpError(400, `Failed to upload file: a parent of ${path} was moved or removed meanwhile`);
      throw new HttpError(500, `Failed to upload file: ${(err as Error).message}`);
    });
    try {
      return await this.receiveInto(req, folder, name, boundary);
    } finally {
      await folder.close();
    }
  }

  /** Streams the body into a temporary file of `folder`, renamed over `name` once complete; answers the bytes written (1.58's FileUploadResult). */
  private async receiveInto(req: IncomingMessage, folder: OpenFolder, name: string, boundary: string | null): Promise<{ success: true; file_size: number }> {
    const existing = await lstat(folder.at(name)).catch(() => null);
    if (existing?.isDirectory()) throw new HttpError(400, 'Path is a directory');

    req.setTimeout(UPLOAD_IDLE_MS, () => req.destroy(new Error('upload stalled')));
    const tmp = folder.at(`.${name}.${randomBytes(6).toString('hex')}.upload`);
    const handle = await open(tmp, CREATE_NEW, 0o644).catch((err: Error) => {
      if (errno(err) === 'ENOENT') throw new HttpError(400, 'Failed to upload file: its folder was removed meanwhile');
      throw new HttpError(500, `Failed to upload file: ${err.message}`);
    });
    let size = 0;
    const garbage = new StreamGarbage();
    // The socket's chunks are copied into one buffer written out when full: they die young, and
    // the disk sees few large writes.
    const buffer = Buffer.allocUnsafe(UPLOAD_BUFFER_BYTES);
    let buffered = 0;
    const flush = async () => {
      for (let offset = 0; offset < buffered; ) offset += (await handle.write(buffer, offset, buffered - offset)).bytesWritten;
      buffered = 0;
    };
    const write = async (data: Buffer) => {
      size += data.length;
      garbage.add(data.length);
      if (size > this.maxUploadBytes) throw this.tooLarge();
      for (let offset = 0; offset < data.length; ) {
        const copied = data.copy(buffer, buffered, offset);
        buffered += copied;
        offset += copied;
        if (buffered === buffer.length) await flush();
      }
    };
    let renamed = false;
    try {
      if (boundary === null) {
        for await (const chunk of chunksOf(req)) await write(chunk);
      } else {
        let found = false;
        let writing = false;
        for await (const event of parseMultipart(this.limited(chunksOf(req)), boundary)) {
          if (event.type === 'part') {
            // The first `file` field is the upload; every other field is read past.
            writing = !found && event.part.name === 'file';
            found ||= writing;
          } else if (event.type === 'data') {
            if (writing) await write(event.data);
          } else {
            writing = false;
          }
        }
        if (!found) throw new HttpError(422, [{ type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null }]);
      }
      if (!req.complete) throw new HttpError(400, 'The request body was not received completely');
      await flush();
      if (existing?.isFile()) await handle.chmod(existing.mode & 0o7777).catch(() => undefined);
      await handle.close();
      await rename(tmp, folder.at(name));
      renamed = true;
      return { success: true, file_size: size };
    } catch (err) {
      if (err instanceof MultipartError) throw new HttpError(400, err.message);
      if (err instanceof HttpError) throw err;
      if (req.destroyed || req.readableAborted) throw new HttpError(400, 'The request body was not received completely');
      // The folder or the file changed while the body came in.
      if (errno(err) === 'ENOENT') throw new HttpError(400, 'Failed to upload file: its folder was removed meanwhile');
      if (errno(err) === 'EISDIR') throw new HttpError(400, 'Path is a directory');
      throw new HttpError(500, `Failed to upload file: ${(err as Error).message}`);
    } finally {
      await handle.close().catch(() => undefined);
      if (!renamed) await unlink(tmp).catch(() => undefined);
    }
  }

  /** The whole multipart body is bounded too (other fields, however large, are only read past). */
  private async *limited(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let total = 0;
    for await (const chunk of source) {
      total += chunk.length;
      if (total > this.maxUploadBytes + MULTIPART_OVERHEAD_BYTES) throw this.tooLarge();
      yield chunk;
    }
  }

  private tooLarge(): HttpError {
    return new HttpError(413, `File is larger than the upload limit of ${this.maxUploadBytes} bytes`);
  }

  /** `GET /api/file/download?path=`: the file's bytes, streamed (HEAD: the headers only). */
  async download(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const real = await this.paths.requireInside(path);
    // The opened file is what gets checked and read (never a path named again after the check).
    const handle = await this.paths.openFile(real, path, constants.O_RDONLY | constants.O_NONBLOCK).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new HttpError(404, 'File not found');
      throw new HttpError(500, `Failed to download file: ${(err as Error).message}`);
    });
    const info = await handle.stat().catch(async (err: Error) => {
      await handle.close().catch(() => undefined);
      throw new HttpError(500, `Failed to download file: ${err.message}`);
    });
    if (!info.isFile()) {
      await handle.close().catch(() => undefined);
      throw new HttpError(400, 'Path is not a file');
    }
    try {
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
        'content-disposition': attachmentDisposition(basename(path)),
        'last-modified': info.mtime.toUTCString(),
        'accept-ranges': 'bytes',
      };
      const range = byteRange(req.headers.range, info.size);
      if (range === 'unsatisfiable') {
        res.writeHead(416, { 'content-range': `bytes */${info.size}`, 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ detail: 'Range Not Satisfiable' }));
      }
      const start = range?.start ?? 0;
      const length = range ? range.end - range.start + 1 : info.size;
      if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${info.size}`;
      res.writeHead(range ? 206 : 200, { ...headers, 'content-length': length });
      if (req.method === 'HEAD') return void res.end();
      // One buffer, reused once the socket has taken its bytes: memory stays flat, and a slow
      // client slows the reading down.
      const buffer = Buffer.allocUnsafe(DOWNLOAD_BUFFER_BYTES);
      let left = length;
      let position = start;
      while (left > 0 && !res.destroyed) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, left), position);
        if (bytesRead === 0) break;
        left -= bytesRead;
        position += bytesRead;
        await new Promise<void>((resolve, reject) => res.write(buffer.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve())));
      }
      // A file that shrank meanwhile, or a client gone: the response ends short (Content-Length tells).
      if (left > 0) res.destroy();
      else res.end();
    } catch {
      res.destroy();
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** `POST /api/file/create_directory?path=`: mkdir -p (idempotent). */
  async createDirectory(path: string): Promise<{ success: true }> {
    const real = await this.paths.requireInside(path);
    try {
      await (await this.paths.openFolder(real, path, true)).close();
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (errno(err) === 'EEXIST' || errno(err) === 'ENOTDIR') throw new HttpError(400, 'Path exists and is not a directory');
      if (errno(err) === 'ENOENT') throw new HttpError(400, `Failed to create directory: a parent of ${path} was moved or removed meanwhile`);
      if (errno(err) === 'EACCES' || errno(err) === 'EPERM') throw new HttpError(403, `Permission denied: ${path}`);
      throw new HttpError(500, `Failed to create directory: ${(err as Error).message}`);
    }
    return { success: true };
  }

  /** `GET /api/file/home`: the sandbox root plays the home; its top-level folders are the favorites. */
  async home(includeHidden: boolean): Promise<FileHome> {
    const root = this.paths.root;
    const favorites: FileBrowserEntry[] = [];
    for (const entry of await readdir(root, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || entry.name === BERTH_DIR) continue;
      if (!includeHidden && entry.name.startsWith('.')) continue;
      favorites.push({ label: entry.name, path: join(root, entry.name) });
    }
    favorites.sort((a, b) => {
      const x = a.label.toLowerCase();
      const y = b.label.toLowerCase();
      return x < y ? -1 : x > y ? 1 : 0;
    });
    return { home: root, favorites: favorites.slice(0, MAX_FAVORITES), locations: [{ label: '/', path: root }] };
  }

  /**
   * `GET /api/file/search_subdirs?path=&page_id=&limit=&include_hidden=`: the folders right inside
   * `path` (symlinks and files skipped, hidden ones unless asked), sorted case-insensitively (ties
   * by the exact name), paged by the name of a page's first item.
   */
  async searchSubdirs(query: SearchSubdirsQuery): Promise<SubdirectoryPage> {
    const { path } = query;
    const real = await this.paths.requireInside(path);
    const folder = await this.paths.openFolder(real, path).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      if (errno(err) === 'ENOENT') throw new HttpError(404, 'Directory not found');
      if (errno(err) === 'ENOTDIR') throw new HttpError(400, 'Path is not a directory');
      if (errno(err) === 'EACCES' || errno(err) === 'EPERM') throw new HttpError(403, `Permission denied: ${path}`);
      throw new HttpError(500, `Failed to list directory: ${(err as Error).message}`);
    });
    let names: string[];
    try {
      const entries = await readdir(folder.at(), { withFileTypes: true }).catch((err: unknown) => {
        if (errno(err) === 'EACCES' || errno(err) === 'EPERM') throw new HttpError(403, `Permission denied: ${path}`);
        throw err;
      });
      // The executor's own files are not the workspace's.
      const atRoot = real === this.paths.root;
      names = entries
        .filter((e) => e.isDirectory() && (query.include_hidden || !e.name.startsWith('.')) && !(atRoot && e.name === BERTH_DIR))
        .map((e) => e.name);
    } finally {
      await folder.close();
    }
    const key = (name: string) => name.toLowerCase();
    names.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a < b ? -1 : a > b ? 1 : 0));
    let start = 0;
    if (query.page_id) {
      start = names.indexOf(query.page_id);
      // A lowercase cursor (as older servers issued them).
      if (start < 0) start = Math.max(0, names.findIndex((name) => key(name) === query.page_id));
    }
    const page = names.slice(start, start + query.limit);
    const next = start + query.limit < names.length ? names[start + query.limit] : null;
    return { items: page.map((name) => ({ name, path: join(path, name) })), next_page_id: next };
  }
}
