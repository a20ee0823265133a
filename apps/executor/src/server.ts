import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { ExecutorConfig } from './config';
import { HttpError } from './errors';
import { Executor } from './executor';

export const SANDBOX_TOKEN_HEADER = 'x-sandbox-token';

/** Constant-time token check (both sides hashed, so lengths leak nothing either). */
export function tokenMatches(offered: string, expected: string): boolean {
  const a = createHash('sha256').update(offered, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && offered.length === expected.length;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

/**
 * Reads a JSON body of at most `limit` bytes. A larger body is read to its end but not kept (so the
 * client gets its 413 rather than a reset connection), up to a point: far beyond the limit the
 * connection is dropped.
 */
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > limit * 8) req.destroy();
      else chunks.length = 0;
    });
    req.on('error', reject);
    req.on('close', () => reject(new HttpError(400, 'The request body was not received completely')));
    req.on('end', () => {
      if (size > limit) return reject(new HttpError(413, `Request body is larger than ${limit} bytes`));
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return reject(new HttpError(400, 'The request body is empty: a JSON object is expected'));
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new HttpError(400, `The request body is not valid JSON: ${(err as Error).message}`));
      }
    });
  });
}

const CLOSE_ROUTE = /^\/api\/sessions\/([^/]+)\/close$/;

/**
 * The executor's HTTP API (plain node:http, to start fast and stay small):
 * `GET /health` (open), and with the sandbox token `POST /api/tools/execute` and
 * `POST /api/sessions/{conversation_id}/close`.
 */
export function createExecutorServer(config: ExecutorConfig, executor: Executor): Server {
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return reply(res, err.status, { detail: err.detail });
      process.stderr.write(`berth executor: ${(err as Error)?.stack ?? String(err)}\n`);
      reply(res, 500, { detail: 'Internal Server Error', exception: (err as Error)?.message ?? String(err) });
    });
  });
  // Long tool calls are normal: only receiving the request is bounded.
  server.requestTimeout = 120_000;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, { detail: 'Method Not Allowed' });
      return reply(res, 200, { status: 'ok' });
    }
    const offered = req.headers[SANDBOX_TOKEN_HEADER];
    if (typeof offered !== 'string' || !tokenMatches(offered, config.token)) return reply(res, 401, { detail: 'Unauthorized' });
    if (path === '/api/tools/execute') {
      if (req.method !== 'POST') return reply(res, 405, { detail: 'Method Not Allowed' });
      const body = await readJson(req, config.maxBodyBytes);
      // The caller hanging up before the answer (an interrupt, a worker gone) abandons the call.
      const abandoned = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) abandoned.abort();
      });
      return reply(res, 200, await executor.execute(body, abandoned.signal));
    }
    const close = CLOSE_ROUTE.exec(path);
    if (close) {
      if (req.method !== 'POST') return reply(res, 405, { detail: 'Method Not Allowed' });
      let id: string;
      try {
        id = decodeURIComponent(close[1]);
      } catch {
        throw new HttpError(422, 'conversation_id must be a UUID');
      }
      executor.closeConversation(id);
      return reply(res, 200, { success: true });
    }
    return reply(res, 404, { detail: 'Not Found' });
  }

  return server;
}
