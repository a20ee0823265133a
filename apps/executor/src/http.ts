import { isPlainPath, jsonSyntaxMessage, toValidationIssues } from '@berth/contracts/executor';
import { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { HttpError } from './errors';

/** Answers with a JSON body (no-op once an answer has started or the connection is gone). */
export function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

/**
 * Reads a request body of at most `limit` bytes as text. A larger body is read to its end but not
 * kept (so the client gets its 413 rather than a reset connection), up to a point: far beyond the
 * limit the connection is dropped.
 */
export function readText(req: IncomingMessage, limit: number): Promise<string> {
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
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** Reads a JSON body (400 when empty or malformed, 413 when too large). */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const text = await readText(req, limit);
  if (text.trim() === '') throw new HttpError(400, 'The request body is empty: a JSON object is expected');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `The request body is not valid JSON: ${jsonSyntaxMessage((err as Error).message)}`);
  }
}

/**
 * The path of a request as it was sent, for route matching: `new URL` would resolve dot segments
 * (`%2e%2e` too) and reach routes the caller never named. Null for a path no route has: dot
 * segments, encoded slashes or backslashes, NUL, a target that is not a plain path.
 */
export function requestPath(url: string | undefined): string | null {
  const raw = (url ?? '/').split('?')[0];
  return isPlainPath(raw) ? raw : null;
}

/** The query string as an object (the first value of a repeated parameter; every value of a `lists` one). */
export function queryOf(search: URLSearchParams, lists: readonly string[] = []): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of search) if (!(name in query)) query[name] = lists.includes(name) ? search.getAll(name) : value;
  return query;
}

/** A path parameter as sent (percent-decoded), or null when it does not decode. */
export function pathParam(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** Parses `input` with `schema`, or answers 422 with a FastAPI-style detail list. */
export function validate<S extends z.ZodType>(schema: S, input: unknown, location: 'query' | 'body' | 'path'): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new HttpError(422, toValidationIssues(parsed.error, location, input));
  return parsed.data;
}
