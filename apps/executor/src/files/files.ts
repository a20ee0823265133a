import { FileBrowserEntry, FileHome } from '@berth/contracts';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../errors';
import { BERTH_DIR, SandboxPaths } from '../sandbox-paths';
import { multipartBoundary, MultipartError, parseMultipart } from './multipart';

const MAX_FAVORITES = 50;
/** An upload that sends nothing for this long is dropped. */
const UPLOAD_IDLE_MS = 120_000;
/** After a refused upload, this much of the rest of the body is read (and dropped) so the client sees the answer. */
const DRAIN_AFTER_REFUSAL_BYTES = 64 * 1024 * 1024;

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
  async upload(req: IncomingMessage, res: ServerResponse, path: string): Promise<{ success: true }> {
    try {
      return await this.receive(req, path);
    } catch (err) {
      // The rest of the body is read (up to a point) so the client gets the answer, not a reset.
      if (!req.complete && !req.destroyed) {
        res.setHeader('connection', 'close');
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

  private async receive(req: IncomingMessage, path: string): Promise<{ success: true }> {
    const target = await this.paths.requireInside(path);
    let boundary: string | null;
    try {
      boundary = multipartBoundary(req.headers['content-type']);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (boundary === null && declared > this.maxUploadBytes) throw this.tooLarge();

    const existing = await stat(target).catch(() => null);
    if (existing?.isDirectory()) throw new HttpError(400, 'Path is a directory');
    const dir = dirname(target);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      if (errno(err) === 'EEXIST' || errno(err) === 'ENOTDIR') throw new HttpError(400, `Failed to upload file: a parent of ${path} is not a directory`);
      throw new HttpError(500, `Failed to upload file: ${(err as Error).message}`);
    }

    req.setTimeout(UPLOAD_IDLE_MS, () => req.destroy(new Error('upload stalled')));
    const tmp = join(dir, `.${basename(target)}.${randomBytes(6).toString('hex')}.upload`);
    const handle = await open(tmp, 'wx', 0o644).catch((err: Error) => {
      throw new HttpError(500, `Failed to upload file: ${err.message}`);
    });
    let size = 0;
    const write = async (data: Buffer) => {
      size += data.length;
      if (size > this.maxUploadBytes) throw this.tooLarge();
      for (let offset = 0; offset < data.length; ) offset += (await handle.write(data, offset, data.length - offset)).bytesWritten;
    };
    let renamed = false;
    try {
      if (boundary === null) {
        for await (const chunk of chunksOf(req)) await write(chunk);
      } else {
        let found = false;
        let writing = false;
        for await (const event of parseMultipart(chunksOf(req), boundary)) {
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
      await handle.close();
      if (existing) await chmod(tmp, existing.mode & 0o7777).catch(() => undefined);
      await rename(tmp, target);
      renamed = true;
      return { success: true };
    } catch (err) {
      if (err instanceof MultipartError) throw new HttpError(400, err.message);
      if (err instanceof HttpError) throw err;
      if (req.destroyed || req.readableAborted) throw new HttpError(400, 'The request body was not received completely');
      throw new HttpError(500, `Failed to upload file: ${(err as Error).message}`);
    } finally {
      await handle.close().catch(() => undefined);
      if (!renamed) await unlink(tmp).catch(() => undefined);
    }
  }

  private tooLarge(): HttpError {
    return new HttpError(413, `File is larger than the upload limit of ${this.maxUploadBytes} bytes`);
  }

  /** `GET /api/file/download?path=`: the file's bytes, streamed (HEAD: the headers only). */
  async download(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const real = await this.paths.requireInside(path);
    const info = await stat(real).catch((err) => {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new HttpError(404, 'File not found');
      throw new HttpError(500, `Failed to download file: ${(err as Error).message}`);
    });
    if (!info.isFile()) throw new HttpError(400, 'Path is not a file');
    const stream = createReadStream(real);
    // Opening can still fail (permissions): answer that as an error, not as a cut-off 200.
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', (err) => reject(new HttpError(500, `Failed to download file: ${err.message}`)));
    });
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': info.size,
      'content-disposition': attachmentDisposition(basename(path)),
      'last-modified': info.mtime.toUTCString(),
    });
    if (req.method === 'HEAD') {
      stream.destroy();
      res.end();
      return;
    }
    // A hung-up client or a read error ends the response where it is (Content-Length tells).
    await pipeline(stream, res).catch(() => res.destroy());
  }

  /** `POST /api/file/create_directory?path=`: mkdir -p (idempotent). */
  async createDirectory(path: string): Promise<{ success: true }> {
    const real = await this.paths.requireInside(path);
    const info = await stat(real).catch(() => null);
    if (info && !info.isDirectory()) throw new HttpError(400, 'Path exists and is not a directory');
    try {
      await mkdir(real, { recursive: true });
    } catch (err) {
      if (errno(err) === 'EEXIST' || errno(err) === 'ENOTDIR') throw new HttpError(400, 'Path exists and is not a directory');
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
}
