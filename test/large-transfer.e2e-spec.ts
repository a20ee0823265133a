import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, rssBytes, run, waitFor } from './support/processes';
import { testQueuePrefix } from './support/server';

const MB = 1024 * 1024;
const SIZE_MB = 200;
const KEY = 'transfer-key';

/** Deterministic 1 MiB blocks, generated on the fly: the test never holds the file either. */
function block(i: number): Buffer {
  const b = Buffer.alloc(MB, i % 256);
  b.writeUInt32BE(i, 0);
  return b;
}

/**
 * A 200 MB upload and download through the gateway (a real server process) to a sandbox: streamed
 * both ways, so the gateway's memory hardly moves. Measured from /proc, not timed.
 */
describe('a 200 MB file through /sandboxes/{id}/api/file', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-transfer-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('uploads and downloads it intact while the gateway grows by less than 150 MB', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    // PostgreSQL keeps the embedded database's own memory out of the gateway's figures.
    const server = run('dist/apps/gateway/src/main.js', ['--port', String(port)], {
      BERTH_DATA_DIR: dataDir,
      OH_SESSION_API_KEYS_0: KEY,
      LOG_LEVEL: 'warn',
      DATABASE_URL: process.env.BERTH_TEST_DATABASE_URL as string,
      REDIS_URL: process.env.BERTH_TEST_REDIS_URL as string,
      BERTH_QUEUE_PREFIX: testQueuePrefix(),
      OH_SECRET_KEY: 'transfer-secret',
    });
    const headers = { 'X-Session-API-Key': KEY };
    try {
      await waitFor(`${base}/ready`);
      const sandbox = (await (await fetch(`${base}/api/sandboxes`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' })).json()) as { id: string };
      const home = ((await (await fetch(`${base}/sandboxes/${sandbox.id}/api/file/home`, { headers })).json()) as { home: string }).home;
      const path = `${home}/big.bin`;
      const pid = server.child.pid as number;
      // A first, small transfer settles what the first request of each kind allocates.
      const warmUp = await fetch(`${base}/sandboxes/${sandbox.id}/api/file/upload?path=${encodeURIComponent(`${home}/warm.bin`)}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        body: Buffer.alloc(8 * MB, 1),
      });
      expect(warmUp.status).toBe(200);
      await (await fetch(`${base}/sandboxes/${sandbox.id}/api/file/download?path=${encodeURIComponent(`${home}/warm.bin`)}`, { headers })).arrayBuffer();
      const before = rssBytes(pid);
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);

      const expected = createHash('sha256');
      const boundary = `----berth${Date.now()}`;
      async function* multipart() {
        yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
        for (let i = 0; i < SIZE_MB; i++) {
          const b = block(i);
          expected.update(b);
          yield b;
        }
        yield Buffer.from(`\r\n--${boundary}--\r\n`);
      }
      const upload = await fetch(`${base}/sandboxes/${sandbox.id}/api/file/upload?path=${encodeURIComponent(path)}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: multipart() as unknown as RequestInit['body'],
        duplex: 'half',
      } as RequestInit);
      expect(upload.status).toBe(200);
      const afterUpload = peak;

      const download = await fetch(`${base}/sandboxes/${sandbox.id}/api/file/download?path=${encodeURIComponent(path)}`, { headers });
      expect(download.status).toBe(200);
      expect(Number(download.headers.get('content-length'))).toBe(SIZE_MB * MB);
      const got = createHash('sha256');
      let size = 0;
      for await (const chunk of download.body as unknown as AsyncIterable<Uint8Array>) {
        got.update(chunk);
        size += chunk.length;
      }
      clearInterval(sampler);
      expect(size).toBe(SIZE_MB * MB);
      expect(got.digest('hex')).toBe(expected.digest('hex'));
      const growthMb = (peak - before) / MB;
      console.log(
        `gateway RSS: ${(before / MB).toFixed(0)} MB before, peak ${(afterUpload / MB).toFixed(0)} MB during the upload, ` +
          `${(peak / MB).toFixed(0)} MB during the download (+${growthMb.toFixed(0)} MB) for ${SIZE_MB} MB each way`,
      );
      expect(growthMb).toBeLessThan(150);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  }, 180_000);
});
