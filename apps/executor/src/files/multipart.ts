/**
 * A streaming `multipart/form-data` parser (RFC 7578 / RFC 2046): it scans each chunk for the
 * boundary and hands part data on as it comes, keeping at most a boundary's length of bytes back
 * (the start of a boundary split across two chunks). Pull-based: the next chunk is read only once
 * the consumer has taken the previous events, so a slow disk slows the upload down instead of
 * filling memory.
 */

export interface MultipartPart {
  /** `name` of the part's Content-Disposition (null if none). */
  name: string | null;
  filename: string | null;
  /** Header names lower-cased. */
  headers: Record<string, string>;
}

export type MultipartEvent = { type: 'part'; part: MultipartPart } | { type: 'data'; data: Buffer } | { type: 'end' };

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_BOUNDARY_LINE = 1024;

/**
 * Parameters of a header value such as `form-data; name="file"; filename="a b.txt"` (quoted strings
 * with backslash escapes, and RFC 5987 `filename*=utf-8''…`, which wins over `filename`).
 */
export function headerParams(value: string): { type: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  const semicolon = value.indexOf(';');
  const type = (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  let i = semicolon < 0 ? value.length : semicolon + 1;
  while (i < value.length) {
    while (i < value.length && /[\s;]/.test(value[i])) i++;
    const eq = value.indexOf('=', i);
    if (eq < 0) break;
    const name = value.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (i < value.length && value[i] === ' ') i++;
    let param = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length && value[i] !== '"') {
        if (value[i] === '\\' && i + 1 < value.length) i++;
        param += value[i++];
      }
      i++;
    } else {
      const end = value.indexOf(';', i);
      param = value.slice(i, end < 0 ? value.length : end).trim();
      i = end < 0 ? value.length : end;
    }
    if (name) params[name] = param;
  }
  const extended = params['filename*'];
  if (extended !== undefined) {
    const m = /^([\w!#$%&+^`{}~-]*)'[^']*'(.*)$/.exec(extended);
    if (m) {
      try {
        params.filename = m[1].toLowerCase() === 'utf-8' ? decodeURIComponent(m[2]) : unescape(m[2]);
      } catch {
        /* keep the plain filename */
      }
    }
  }
  return { type, params };
}

/** The boundary of a `multipart/form-data` Content-Type, or null when it is not one. */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (!contentType) return null;
  const { type, params } = headerParams(contentType);
  if (type !== 'multipart/form-data') return null;
  const boundary = params.boundary;
  if (!boundary || boundary.length > 200) throw new MultipartError('The multipart/form-data Content-Type has no valid boundary');
  return boundary;
}

function parseHeaders(block: Buffer): MultipartPart {
  const headers: Record<string, string> = {};
  for (const line of block.toString('utf8').split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError(`Malformed multipart header line: ${line.slice(0, 100)}`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const disposition = headers['content-disposition'];
  const params = disposition ? headerParams(disposition).params : {};
  return { name: params.name ?? null, filename: params.filename ?? null, headers };
}

type State = 'preamble' | 'delimiter' | 'headers' | 'body' | 'epilogue';

/**
 * Parses a multipart body from `source`, yielding for each part a `part` event (its headers), its
 * bytes in `data` events, and an `end` event. Throws MultipartError on a malformed body, including
 * one that ends before its closing boundary.
 */
export async function* parseMultipart(source: AsyncIterable<Buffer>, boundary: string): AsyncGenerator<MultipartEvent> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const keep = delimiter.length - 1;
  // A leading CRLF lets the first boundary (which has none before it) match `delimiter` too.
  let buf: Buffer = Buffer.from(CRLF);
  let state: State = 'preamble';

  for await (const chunk of source) {
    if (state === 'epilogue') continue;
    buf = buf.length > 0 ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (state === 'preamble') {
        const at = buf.indexOf(delimiter);
        if (at < 0) {
          buf = buf.subarray(Math.max(0, buf.length - keep));
          break;
        }
        buf = buf.subarray(at + delimiter.length);
        state = 'delimiter';
      } else if (state === 'delimiter') {
        // After a boundary: `--` closes the body; otherwise optional padding, then CRLF.
        if (buf.length < 2) break;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'epilogue';
          buf = EMPTY;
          break;
        }
        const eol = buf.indexOf(CRLF);
        if (eol < 0) {
          if (buf.length > MAX_BOUNDARY_LINE) throw new MultipartError('Malformed multipart boundary line');
          break;
        }
        if (!/^[ \t]*$/.test(buf.subarray(0, eol).toString('latin1'))) throw new MultipartError('Malformed multipart boundary line');
        buf = buf.subarray(eol + 2);
        state = 'headers';
      } else if (state === 'headers') {
        if (buf.length < 2) break;
        let block: Buffer;
        if (buf[0] === 0x0d && buf[1] === 0x0a) {
          // A part without headers.
          block = EMPTY;
          buf = buf.subarray(2);
        } else {
          const end = buf.indexOf(HEADER_END);
          if (end < 0) {
            if (buf.length > MAX_HEADER_BYTES) throw new MultipartError('Multipart part headers are too large');
            break;
          }
          block = buf.subarray(0, end);
          buf = buf.subarray(end + HEADER_END.length);
        }
        yield { type: 'part', part: parseHeaders(block) };
        state = 'body';
      } else if (state === 'body') {
        const at = buf.indexOf(delimiter);
        if (at >= 0) {
          if (at > 0) yield { type: 'data', data: buf.subarray(0, at) };
          yield { type: 'end' };
          buf = buf.subarray(at + delimiter.length);
          state = 'delimiter';
          continue;
        }
        // Everything but what could be the start of a boundary cut by the chunk's end.
        const safe = buf.length - keep;
        if (safe > 0) {
          yield { type: 'data', data: buf.subarray(0, safe) };
          buf = buf.subarray(safe);
        }
        break;
      } else {
        break;
      }
    }
  }
  if (state !== 'epilogue') throw new MultipartError('The multipart body ended before its closing boundary');
}
