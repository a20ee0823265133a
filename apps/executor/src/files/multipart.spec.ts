import { headerParams, multipartBoundary, MultipartError, MultipartEvent, parseMultipart } from './multipart';

const BOUNDARY = '----berthBoundary7MA4YWxkTrZu0gW';

function body(parts: { headers: string[]; data: Buffer }[], { preamble = '', epilogue = '' } = {}): Buffer {
  const pieces: Buffer[] = [Buffer.from(preamble)];
  for (const part of parts) {
    pieces.push(Buffer.from(`--${BOUNDARY}\r\n${part.headers.join('\r\n')}\r\n\r\n`), part.data, Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${BOUNDARY}--\r\n${epilogue}`));
  return Buffer.concat(pieces);
}

async function* chunked(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length];
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

/** Parses and regroups the events: one entry per part with its data joined. */
async function parts(source: AsyncIterable<Buffer>): Promise<{ name: string | null; filename: string | null; data: Buffer }[]> {
  const out: { name: string | null; filename: string | null; data: Buffer[] }[] = [];
  const events: MultipartEvent['type'][] = [];
  for await (const event of parseMultipart(source, BOUNDARY)) {
    events.push(event.type);
    if (event.type === 'part') out.push({ name: event.part.name, filename: event.part.filename, data: [] });
    else if (event.type === 'data') out[out.length - 1].data.push(Buffer.from(event.data));
  }
  // Every part is opened and closed exactly once.
  expect(events.filter((t) => t === 'part')).toHaveLength(events.filter((t) => t === 'end').length);
  return out.map((p) => ({ ...p, data: Buffer.concat(p.data) }));
}

describe('multipart parser', () => {
  // Binary content that contains near-boundaries: CRLF, dashes, a boundary prefix.
  const tricky = Buffer.concat([
    Buffer.from([0, 1, 2, 13, 10, 45, 45, 255]),
    Buffer.from(`\r\n--${BOUNDARY.slice(0, 10)}`),
    Buffer.from('\r\n-'),
    Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256)),
    Buffer.from(`--${BOUNDARY}`), // not preceded by CRLF: data, not a boundary
  ]);
  const payload = body(
    [
      { headers: ['Content-Disposition: form-data; name="meta"'], data: Buffer.from('ignored field') },
      { headers: ['Content-Disposition: form-data; name="file"; filename="r\u00e9sum\u00e9 1.bin"', 'Content-Type: application/octet-stream'], data: tricky },
      { headers: ['Content-Disposition: form-data; name="empty"; filename=""'], data: Buffer.alloc(0) },
    ],
    { preamble: 'preamble to ignore\r\n', epilogue: 'epilogue to ignore' },
  );

  it('finds every part whatever the chunk sizes, boundaries split across chunks included', async () => {
    for (const sizes of [[payload.length], [1], [2, 3], [7], [13, 1, 64], [BOUNDARY.length + 3], [4096]]) {
      const got = await parts(chunked(payload, sizes));
      expect(got.map((p) => [p.name, p.filename])).toEqual([
        ['meta', null],
        ['file', 'r\u00e9sum\u00e9 1.bin'],
        ['empty', ''],
      ]);
      expect(got[0].data.toString()).toBe('ignored field');
      expect(got[1].data.equals(tricky)).toBe(true);
      expect(got[2].data.length).toBe(0);
    }
  });

  it('refuses a body that ends before its closing boundary, or a malformed one', async () => {
    const cut = payload.subarray(0, payload.length - 30);
    await expect(parts(chunked(cut, [100]))).rejects.toBeInstanceOf(MultipartError);
    const garbage = Buffer.from(`--${BOUNDARY}xx\r\n\r\n`);
    await expect(parts(chunked(garbage, [5]))).rejects.toThrow(/boundary line/);
  });

  it('reads Content-Type boundaries and Content-Disposition parameters', () => {
    expect(multipartBoundary('multipart/form-data; boundary=abc')).toBe('abc');
    expect(multipartBoundary('Multipart/Form-Data; charset=utf-8; boundary="a b;c"')).toBe('a b;c');
    expect(multipartBoundary('application/octet-stream')).toBeNull();
    expect(multipartBoundary(undefined)).toBeNull();
    expect(() => multipartBoundary('multipart/form-data')).toThrow(MultipartError);
    expect(headerParams('form-data; name="file"; filename="a \\"q\\".txt"').params).toEqual({ name: 'file', filename: 'a "q".txt' });
    expect(headerParams("form-data; name=file; filename*=UTF-8''%E2%82%AC%20rates.txt").params.filename).toBe('\u20ac rates.txt');
  });
});
