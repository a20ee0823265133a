import { alive, eventually, RunningExecutor, startExecutor as startSandboxExecutor } from './support/processes';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';

/**
 * The workspace API of the built sandbox executor (`dist/apps/executor/src/main.js`): files, bash
 * commands and their events (REST and socket), git, activity — with OpenHands' paths and bodies,
 * driven over real HTTP and WebSocket connections as the gateway will pass them through.
 */

const TOKEN = 'executor-workspace-e2e-token';
const AUTH = { 'x-sandbox-token': TOKEN };
const MiB = 1024 * 1024;

type Json = Record<string, any>;

/** This suite's executor: the built one, with this suite's token. */
function startExecutor(root: string, env: Record<string, string> = {}): Promise<RunningExecutor> {
  return startSandboxExecutor(root, TOKEN, env);
}

/** One executor's HTTP API. */
class Api {
  constructor(private readonly port: () => number) {}

  url(path: string, query: Record<string, string | number> = {}): string {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString();
    return `http://127.0.0.1:${this.port()}${path}${qs ? `?${qs}` : ''}`;
  }

  async call(method: string, path: string, { query = {}, json, body, headers = {} }: { query?: Record<string, string | number>; json?: unknown; body?: string | Uint8Array | FormData; headers?: Record<string, string> } = {}) {
    const res = await fetch(this.url(path, query), {
      method,
      headers: { ...AUTH, ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: json !== undefined ? JSON.stringify(json) : body,
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    let parsed: any = null;
    if ((res.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(bytes.toString('utf8'));
    return { status: res.status, body: parsed, bytes, headers: res.headers };
  }

  /** A GET with a JSON body (as OpenHands' batch routes take their ids), which fetch cannot send. */
  getWithBody(path: string, json?: unknown): Promise<{ status: number; body: any }> {
    const body = json === undefined ? '' : JSON.stringify(json);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: this.port(), method: 'GET', path, headers: { ...AUTH, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  get(path: string, query: Record<string, string | number> = {}) {
    return this.call('GET', path, { query });
  }

  post(path: string, json: unknown, query: Record<string, string | number> = {}) {
    return this.call('POST', path, { json, query });
  }

  uploadMultipart(path: string, content: Buffer, filename = 'upload.bin', extraFields: Record<string, string> = {}) {
    const form = new FormData();
    for (const [name, value] of Object.entries(extraFields)) form.append(name, value);
    form.append('file', new Blob([new Uint8Array(content)]), filename);
    return this.call('POST', '/api/file/upload', { query: { path }, body: form });
  }

  uploadRaw(path: string, content: Buffer) {
    return this.call('POST', '/api/file/upload', { query: { path }, body: new Uint8Array(content), headers: { 'content-type': 'application/octet-stream' } });
  }

  download(path: string) {
    return this.call('GET', '/api/file/download', { query: { path } });
  }

  async start(command: string, extra: Json = {}): Promise<Json> {
    const res = await this.post('/api/bash/start_bash_command', { command, ...extra });
    if (res.status !== 200) throw new Error(`start_bash_command answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async execute(command: string, extra: Json = {}): Promise<Json> {
    const res = await this.post('/api/bash/execute_bash_command', { command, ...extra });
    if (res.status !== 200) throw new Error(`execute_bash_command answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /**
   * The OpenHands SDK's RemoteWorkspace.execute_command loop, request for request: search this
   * command's BashOutputs (TIMESTAMP, limit 100), then only those after the highest order seen,
   * until one carries an exit code; duplicates are an error.
   */
  async pollCommand(commandId: string, onPoll?: (items: Json[]) => void): Promise<{ stdout: string; stderr: string; exitCode: number; events: Json[] }> {
    const seen = new Set<string>();
    const events: Json[] = [];
    let lastOrder = -1;
    let exitCode: number | null = null;
    for (let polls = 0; exitCode === null; polls++) {
      if (polls > 1200) throw new Error(`command ${commandId} did not end`);
      const query: Record<string, string | number> = { kind__eq: 'BashOutput', sort_order: 'TIMESTAMP', limit: 100, command_id__eq: commandId };
      if (lastOrder >= 0) query.order__gt = lastOrder;
      const res = await this.get('/api/bash/bash_events/search', query);
      expect(res.status).toBe(200);
      onPoll?.(res.body.items);
      for (const event of res.body.items) {
        expect(event.kind).toBe('BashOutput');
        if (seen.has(event.id)) throw new Error(`Duplicate event received: ${event.id}`);
        seen.add(event.id);
        events.push(event);
        if (event.order > lastOrder) lastOrder = event.order;
        if (event.exit_code !== null) exitCode = event.exit_code;
      }
      if (exitCode === null) await new Promise((r) => setTimeout(r, 100));
    }
    return {
      stdout: events.map((e) => e.stdout ?? '').join(''),
      stderr: events.map((e) => e.stderr ?? '').join(''),
      exitCode,
      events,
    };
  }
}

/** Resident memory of a process, from /proc (kB → bytes). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** Samples a process's RSS until stopped; the peak. */
function rssSampler(pid: number) {
  let peak = rssOf(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      /* exited */
    }
  }, 10);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, rssOf(pid));
    },
  };
}

/** Deterministic bulk content: block i is a random MiB stamped with i (reordering would show). */
function blockSource(base: Buffer) {
  return (i: number) => {
    const block = Buffer.from(base);
    block.writeUInt32BE(i, 0);
    return block;
  };
}

/** Streams `blocks` MiB to the executor (multipart or raw), with backpressure; the answer and the sha256 sent. */
function streamUpload(port: number, path: string, blocks: number, multipart: boolean, base: Buffer): Promise<{ status: number; body: string; sha: string }> {
  const boundary = `----berth-${randomBytes(8).toString('hex')}`;
  const head = multipart ? Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`) : Buffer.alloc(0);
  const tail = multipart ? Buffer.from(`\r\n--${boundary}--\r\n`) : Buffer.alloc(0);
  const block = blockSource(base);
  const hash = createHash('sha256');
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/api/file/upload?path=${encodeURIComponent(path)}`,
        headers: {
          ...AUTH,
          'content-type': multipart ? `multipart/form-data; boundary=${boundary}` : 'application/octet-stream',
          'content-length': head.length + blocks * MiB + tail.length,
        },
      },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, sha: hash.digest('hex') }));
      },
    );
    req.on('error', reject);
    let i = 0;
    const pump = () => {
      while (i < blocks) {
        const data = block(i++);
        hash.update(data);
        if (!req.write(data)) return void req.once('drain', pump);
      }
      req.end(tail);
    };
    req.write(head);
    pump();
  });
}

/** Streams a download into a hash. */
function streamDownload(port: number, path: string): Promise<{ status: number; size: number; sha: string; headers: Json }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: `/api/file/download?path=${encodeURIComponent(path)}`, headers: AUTH }, (res) => {
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        hash.update(d);
      });
      res.on('end', () => resolve({ status: res.statusCode!, size, sha: hash.digest('hex'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A socket client that records the JSON frames it receives. */
class BashSocket {
  readonly frames: Json[] = [];
  readonly ws: WebSocket;
  closeCode: number | null = null;
  refusedStatus: number | null = null;
  private readonly closed: Promise<void>;

  constructor(url: string, headers: Record<string, string> = AUTH) {
    this.ws = new WebSocket(url, { headers });
    this.ws.on('message', (data) => this.frames.push(JSON.parse(data.toString())));
    this.ws.on('unexpected-response', (_req, res) => {
      this.refusedStatus = res.statusCode ?? null;
      this.ws.terminate();
    });
    this.ws.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code) => {
        this.closeCode = code;
        resolve();
      }),
    );
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve();
      this.ws.once('open', () => resolve());
      this.ws.once('close', () => reject(new Error('socket closed before opening')));
    });
  }

  send(data: unknown): void {
    this.ws.send(typeof data === 'string' ? data : JSON.stringify(data));
  }

  async waitFor(check: (frames: Json[]) => boolean, timeoutMs = 15_000): Promise<Json[]> {
    if (!(await eventually(() => check(this.frames), timeoutMs))) throw new Error(`socket frames never matched: ${JSON.stringify(this.frames).slice(0, 2000)}`);
    return this.frames;
  }

  async waitClosed(): Promise<number | null> {
    await this.closed;
    return this.closeCode;
  }

  close(): void {
    this.ws.close();
  }
}

const HEX32 = /^[0-9a-f]{32}$/;
const UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$/;

describe('executor workspace API', () => {
  let root: string;
  let executor: RunningExecutor;
  const api = new Api(() => executor.port);
  let outside: string;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'berth-workspace-')));
    outside = realpathSync(mkdtempSync(join(tmpdir(), 'berth-workspace-outside-')));
    writeFileSync(join(outside, 'secret.txt'), 'secret');
    executor = await startExecutor(root, { BERTH_TERMINAL_NO_OUTPUT_TIMEOUT_MS: '1000' });
  });

  afterAll(async () => {
    expect(await executor.stop()).toBe(0);
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('requires the sandbox token on every workspace route and the socket', async () => {
    for (const [method, path] of [
      ['POST', '/api/file/upload'],
      ['GET', '/api/file/download'],
      ['POST', '/api/file/create_directory'],
      ['GET', '/api/file/home'],
      ['POST', '/api/bash/start_bash_command'],
      ['POST', '/api/bash/execute_bash_command'],
      ['GET', '/api/bash/bash_events/search'],
      ['GET', '/api/bash/bash_events/'],
      ['DELETE', '/api/bash/bash_events'],
      ['GET', '/api/git/changes'],
      ['GET', '/api/git/diff'],
      ['GET', '/api/activity'],
    ]) {
      const res = await fetch(api.url(path), { method });
      expect([path, res.status, await res.json()]).toEqual([path, 401, { detail: 'Unauthorized' }]);
    }
    const refused = new BashSocket(`ws://127.0.0.1:${executor.port}/sockets/bash-events`, {});
    await refused.waitClosed();
    expect(refused.refusedStatus).toBe(401);
    const wrong = new BashSocket(`ws://127.0.0.1:${executor.port}/sockets/bash-events`, { 'x-sandbox-token': 'nope' });
    await wrong.waitClosed();
    expect(wrong.refusedStatus).toBe(401);
  });

  describe('files', () => {
    it('uploads multipart and raw bodies atomically and downloads them byte for byte', async () => {
      const dir = join(root, 'up loads', 'deep er');
      const target = join(dir, 'r\u00e9sum\u00e9 \u00fc.bin');
      const first = randomBytes(300 * 1024 + 7);
      // Multipart, as OpenHands clients send it, with another field before the file.
      const up = await api.uploadMultipart(target, first, 'ignored name.bin', { note: 'not the file' });
      expect([up.status, up.body]).toEqual([200, { success: true, file_size: first.length }]);
      expect(readFileSync(target).equals(first)).toBe(true);

      const down = await api.download(target);
      expect(down.status).toBe(200);
      expect(down.bytes.equals(first)).toBe(true);
      expect(down.headers.get('content-type')).toBe('application/octet-stream');
      expect(down.headers.get('content-length')).toBe(String(first.length));
      expect(down.headers.get('content-disposition')).toBe(`attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%C3%BC.bin`);

      // Ranges, for resumed downloads.
      const part = await api.call('GET', '/api/file/download', { query: { path: target }, headers: { range: 'bytes=10-19' } });
      expect([part.status, part.headers.get('content-range'), part.bytes.equals(first.subarray(10, 20))]).toEqual([206, `bytes 10-19/${first.length}`, true]);
      const suffix = await api.call('GET', '/api/file/download', { query: { path: target }, headers: { range: 'bytes=-5' } });
      expect(suffix.bytes.equals(first.subarray(first.length - 5))).toBe(true);
      const past = await api.call('GET', '/api/file/download', { query: { path: target }, headers: { range: `bytes=${first.length}-` } });
      expect([past.status, past.headers.get('content-range')]).toEqual([416, `bytes */${first.length}`]);

      // A raw body overwrites it; nothing temporary is left beside it.
      const second = randomBytes(1000);
      const raw = await api.uploadRaw(target, second);
      expect([raw.status, raw.body]).toEqual([200, { success: true, file_size: 1000 }]);
      expect((await api.download(target)).bytes.equals(second)).toBe(true);
      expect(readdirSync(dir)).toEqual(['r\u00e9sum\u00e9 \u00fc.bin']);

      // An empty file, and a plain name's Content-Disposition.
      expect((await api.uploadMultipart(join(root, 'plain.txt'), Buffer.alloc(0))).body).toEqual({ success: true, file_size: 0 });
      const plain = await api.download(join(root, 'plain.txt'));
      expect([plain.status, plain.bytes.length, plain.headers.get('content-disposition')]).toEqual([200, 0, 'attachment; filename="plain.txt"']);
    });

    it('answers upload and download errors as OpenHands does', async () => {
      expect(await api.call('POST', '/api/file/upload', { query: { path: 'relative/x.txt' }, body: 'x' }).then((r) => [r.status, r.body])).toEqual([400, { detail: 'Path must be absolute' }]);
      const noPath = await api.call('POST', '/api/file/upload', { body: 'x' });
      expect(noPath.status).toBe(422);
      expect(noPath.body.detail[0]).toMatchObject({ type: 'missing', loc: ['query', 'path'] });
      const form = new FormData();
      form.append('other', 'value');
      const noFile = await api.call('POST', '/api/file/upload', { query: { path: join(root, 'nofile.txt') }, body: form });
      expect([noFile.status, noFile.body.detail[0]]).toEqual([422, { type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null }]);
      expect(existsSync(join(root, 'nofile.txt'))).toBe(false);
      const truncated = await api.call('POST', '/api/file/upload', {
        query: { path: join(root, 'cut.txt') },
        body: '--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nunfinished',
        headers: { 'content-type': 'multipart/form-data; boundary=b' },
      });
      expect([truncated.status, truncated.body.detail]).toEqual([400, 'The multipart body ended before its closing boundary']);
      expect(existsSync(join(root, 'cut.txt'))).toBe(false);

      mkdirSync(join(root, 'a-dir'), { recursive: true });
      expect(await api.download(join(root, 'missing.bin')).then((r) => [r.status, r.body])).toEqual([404, { detail: 'File not found' }]);
      expect(await api.download(join(root, 'a-dir')).then((r) => [r.status, r.body])).toEqual([400, { detail: 'Path is not a file' }]);
      expect(await api.download('a-dir/x').then((r) => [r.status, r.body])).toEqual([400, { detail: 'Path must be absolute' }]);
      expect((await api.uploadRaw(join(root, 'a-dir'), Buffer.from('x'))).status).toBe(400);
    });

    it('creates directories (mkdir -p, idempotent) and lists the root as home', async () => {
      const nested = join(root, 'home-test', 'a', 'b');
      for (let i = 0; i < 2; i++) {
        const res = await api.post('/api/file/create_directory', undefined, { path: nested });
        expect([res.status, res.body]).toEqual([200, { success: true }]);
      }
      writeFileSync(join(root, 'home-test', 'file.txt'), 'x');
      const onFile = await api.post('/api/file/create_directory', undefined, { path: join(root, 'home-test', 'file.txt') });
      expect([onFile.status, onFile.body]).toEqual([400, { detail: 'Path exists and is not a directory' }]);

      mkdirSync(join(root, 'Zeta'), { recursive: true });
      mkdirSync(join(root, 'alpha'), { recursive: true });
      mkdirSync(join(root, '.hidden-dir'), { recursive: true });
      const home = await api.get('/api/file/home');
      expect(home.status).toBe(200);
      expect(home.body.home).toBe(root);
      expect(home.body.locations).toEqual([{ label: '/', path: root }]);
      const labels = home.body.favorites.map((f: Json) => f.label);
      expect(labels).toEqual([...labels].sort((a: string, b: string) => a.toLowerCase().localeCompare(b.toLowerCase())));
      expect(labels).toEqual(expect.arrayContaining(['alpha', 'home-test', 'Zeta']));
      expect(labels.indexOf('alpha')).toBeLessThan(labels.indexOf('Zeta'));
      expect(labels).not.toContain('.hidden-dir');
      expect(home.body.favorites).toContainEqual({ label: 'alpha', path: join(root, 'alpha') });
      const hidden = await api.get('/api/file/home', { include_hidden: 'true' });
      expect(hidden.body.favorites.map((f: Json) => f.label)).toContain('.hidden-dir');
      expect(hidden.body.favorites.map((f: Json) => f.label)).not.toContain('.berth');
    });

    it('refuses every path that resolves outside the root: .., absolute, symlinks (dangling ones too)', async () => {
      const outsideDetail = (path: string) => ({ detail: `Path is outside the sandbox: ${path}` });
      const viaDots = `${root}/../${outside.split('/').pop()}/secret.txt`;
      expect(await api.download(viaDots).then((r) => [r.status, r.body])).toEqual([403, outsideDetail(viaDots)]);
      expect(await api.download('/etc/passwd').then((r) => [r.status, r.body])).toEqual([403, outsideDetail('/etc/passwd')]);
      expect((await api.uploadRaw(join(outside, 'planted.txt'), Buffer.from('x'))).status).toBe(403);

      symlinkSync(outside, join(root, 'link-out'));
      const viaLink = join(root, 'link-out', 'secret.txt');
      expect(await api.download(viaLink).then((r) => [r.status, r.body])).toEqual([403, outsideDetail(viaLink)]);
      expect((await api.uploadMultipart(join(root, 'link-out', 'new.txt'), Buffer.from('pwned'))).status).toBe(403);
      expect((await api.uploadRaw(viaLink, Buffer.from('pwned'))).status).toBe(403);
      expect((await api.post('/api/file/create_directory', undefined, { path: join(root, 'link-out', 'made') })).status).toBe(403);
      symlinkSync(join(outside, 'dangling-target.txt'), join(root, 'dangling'));
      expect((await api.uploadRaw(join(root, 'dangling'), Buffer.from('pwned'))).status).toBe(403);
      expect((await api.get('/api/git/changes', { path: join(root, 'link-out') })).status).toBe(403);
      expect((await api.get('/api/git/diff', { path: viaLink })).status).toBe(403);
      const cwdOutside = await api.post('/api/bash/start_bash_command', { command: 'touch planted-by-bash', cwd: join(root, 'link-out') });
      expect(cwdOutside.status).toBe(422);
      expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('secret');
      expect(readdirSync(outside)).toEqual(['secret.txt']);

      // A link that stays inside the root is fine.
      writeFileSync(join(root, 'inside-target.txt'), 'inside');
      symlinkSync(join(root, 'inside-target.txt'), join(root, 'link-in.txt'));
      expect((await api.download(join(root, 'link-in.txt'))).bytes.toString()).toBe('inside');
    });

    it('streams a 200 MB upload and download with the executor RSS staying small', async () => {
      const pid = executor.child.pid!;
      const base = randomBytes(MiB);
      const target = join(root, 'big', 'big.bin');
      const before = rssOf(pid);

      const upSampler = rssSampler(pid);
      const up = await streamUpload(executor.port, target, 200, true, base);
      const upPeak = upSampler.stop();
      expect([up.status, JSON.parse(up.body)]).toEqual([200, { success: true, file_size: 200 * 1024 * 1024 }]);

      const downSampler = rssSampler(pid);
      const down = await streamDownload(executor.port, target);
      const downPeak = downSampler.stop();
      expect(down.status).toBe(200);
      expect(down.size).toBe(200 * MiB);
      expect(down.sha).toBe(up.sha);

      const rawSampler = rssSampler(pid);
      const raw = await streamUpload(executor.port, join(root, 'big', 'raw.bin'), 200, false, base);
      const rawPeak = rawSampler.stop();
      expect(raw.status).toBe(200);
      expect(raw.sha).toBe(up.sha);

      const mb = (n: number) => `${(n / MiB).toFixed(1)} MB`;
      process.stdout.write(
        `executor RSS: before ${mb(before)}, peak during 200 MB multipart upload ${mb(upPeak)}, download ${mb(downPeak)}, raw upload ${mb(rawPeak)}\n`,
      );
      for (const peak of [upPeak, downPeak, rawPeak]) expect(peak).toBeLessThan(100 * MiB);
      rmSync(join(root, 'big'), { recursive: true, force: true });
    });

    it('refuses uploads over BERTH_MAX_UPLOAD_BYTES with 413 and leaves nothing behind', async () => {
      const smallRoot = realpathSync(mkdtempSync(join(tmpdir(), 'berth-workspace-small-')));
      const small = await startExecutor(smallRoot, { BERTH_MAX_UPLOAD_BYTES: '1000' });
      const smallApi = new Api(() => small.port);
      try {
        const raw = await smallApi.uploadRaw(join(smallRoot, 'raw.bin'), randomBytes(5000));
        expect([raw.status, raw.body]).toEqual([413, { detail: 'File is larger than the upload limit of 1000 bytes' }]);
        const multipart = await smallApi.uploadMultipart(join(smallRoot, 'form.bin'), randomBytes(3 * MiB));
        expect([multipart.status, multipart.body]).toEqual([413, { detail: 'File is larger than the upload limit of 1000 bytes' }]);
        expect((await smallApi.uploadMultipart(join(smallRoot, 'ok.bin'), randomBytes(1000))).status).toBe(200);
        expect(readdirSync(smallRoot).sort()).toEqual(['ok.bin']);
      } finally {
        await small.stop();
        rmSync(smallRoot, { recursive: true, force: true });
      }
    });
  });

  describe('bash', () => {
    it('starts a command and the RemoteWorkspace polling loop reads it to its exit code, stdout and stderr apart', async () => {
      const command = await api.start("echo out; echo err >&2; sleep 0.3; printf 'more'; exit 3", { timeout: 20 });
      expect(command).toEqual({ id: expect.stringMatching(HEX32), timestamp: expect.stringMatching(UTC), command: expect.any(String), cwd: root, timeout: 20, kind: 'BashCommand' });
      const result = await api.pollCommand(command.id);
      expect(result).toMatchObject({ stdout: 'out\nmore', stderr: 'err\n', exitCode: 3 });
      const last = result.events[result.events.length - 1];
      expect(Object.keys(last)).toEqual(['id', 'timestamp', 'command_id', 'order', 'exit_code', 'stdout', 'stderr', 'kind']);
      expect(last).toMatchObject({ command_id: command.id, exit_code: 3, kind: 'BashOutput' });
      expect(result.events.map((e) => e.order)).toEqual(result.events.map((_, i) => i));
    });

    it('shows output while the command runs (exit_code null until the end)', async () => {
      const command = await api.start('echo first; sleep 1.5; echo second');
      const running: Json[] = [];
      const result = await api.pollCommand(command.id, (items) => running.push(...items.filter((e) => e.exit_code === null)));
      expect(running.map((e) => e.stdout).join('')).toContain('first\n');
      expect(result).toMatchObject({ stdout: 'first\nsecond\n', exitCode: 0 });
    });

    it('execute_bash_command waits and returns the last BashOutput; cwd is honoured and git-initialised', async () => {
      mkdirSync(join(root, 'work', 'sub'), { recursive: true });
      // A first command in the root (the default cwd) makes it a repository, as a working dir.
      expect(await api.execute('true')).toMatchObject({ exit_code: 0, stdout: null, stderr: null });
      expect(existsSync(join(root, '.git'))).toBe(true);
      const out = await api.execute('pwd; echo $HOME; echo "[${BERTH_SANDBOX_TOKEN:-none}]"', { cwd: join(root, 'work', 'sub') });
      expect(out).toEqual({
        id: expect.stringMatching(HEX32),
        timestamp: expect.stringMatching(UTC),
        command_id: expect.stringMatching(HEX32),
        order: expect.any(Number),
        exit_code: 0,
        stdout: expect.anything(),
        stderr: null,
        kind: 'BashOutput',
      });
      // It is the command's last output; all of them together hold what it printed.
      const all = await api.pollCommand(out.command_id);
      expect(all.events[all.events.length - 1]).toEqual(out);
      expect(all.stdout).toBe(`${join(root, 'work', 'sub')}\n${root}\n[none]\n`);
      // A folder inside that repository is not initialised again.
      expect(existsSync(join(root, 'work', 'sub', '.git'))).toBe(false);
      const relative = await api.execute('pwd', { cwd: 'work' });
      expect(relative).toMatchObject({ order: 0, stdout: `${join(root, 'work')}\n` });
      const bad = await api.post('/api/bash/execute_bash_command', { cwd: root });
      expect(bad.status).toBe(422);
      expect(bad.body.detail[0]).toMatchObject({ type: 'missing', loc: ['body', 'command'] });
    });

    it('kills a command that outlives its timeout, with its children (SIGTERM, then SIGKILL)', async () => {
      const pidFile = join(root, 'timeout-child.pid');
      const command = await api.start(`sleep 600 & echo $! > ${pidFile}; wait`, { timeout: 1 });
      const result = await api.pollCommand(command.id);
      expect(result.exitCode).toBe(-1);
      const childPid = Number(readFileSync(pidFile, 'utf8'));
      expect(await eventually(() => !alive(childPid))).toBe(true);

      // One that ignores SIGTERM (and so does its child) gets SIGKILL.
      const stubbornPid = join(root, 'stubborn-child.pid');
      const stubborn = await api.execute(`trap '' TERM; sleep 601 & echo $! > ${stubbornPid}; wait; echo survived`, { timeout: 1 });
      expect(stubborn).toMatchObject({ exit_code: -1 });
      expect(stubborn.stdout).toBeNull();
      expect(await eventually(() => !alive(Number(readFileSync(stubbornPid, 'utf8'))))).toBe(true);

      // A shell that dies of SIGTERM while its child ignores it: the child gets the SIGKILL too.
      const orphanPid = join(root, 'orphan-child.pid');
      const orphan = await api.execute(`(trap '' TERM; exec sleep 604) & echo $! > ${orphanPid}; wait`, { timeout: 1 });
      expect(orphan.exit_code).toBe(-1);
      expect(await eventually(() => !alive(Number(readFileSync(orphanPid, 'utf8'))))).toBe(true);
    });

    it('chunks big output into BashOutputs of at most 1 MiB with increasing order', async () => {
      const command = await api.start("head -c 3000000 /dev/zero | tr '\\0' a; echo tail >&2");
      const result = await api.pollCommand(command.id);
      expect(result.exitCode).toBe(0);
      expect(result.stdout.length).toBe(3_000_000);
      expect(/^a+$/.test(result.stdout)).toBe(true);
      expect(result.stderr).toBe('tail\n');
      expect(result.events.length).toBeGreaterThanOrEqual(3);
      expect(result.events.map((e) => e.order)).toEqual(result.events.map((_, i) => i));
      for (const event of result.events) expect((event.stdout ?? '').length).toBeLessThanOrEqual(MiB);
      expect(result.events.filter((e) => e.exit_code !== null)).toHaveLength(1);
      const later = await api.get('/api/bash/bash_events/search', { command_id__eq: command.id, order__gt: 1 });
      expect(later.body.items.map((e: Json) => e.order)).toEqual(result.events.filter((e) => e.order > 1).map((e) => e.order));
    });

    it('reports a command that cannot start as BashOutput order 0, exit_code -1', async () => {
      const out = await api.execute('echo never', { cwd: join(root, 'no-such-dir') });
      expect(out).toMatchObject({ order: 0, exit_code: -1, stdout: null, stderr: expect.stringMatching(/^Error executing command: .*No such file or directory/) });
    });

    it('searches events by kind, command, time window and order, pages by file name, gets them by id and in batch', async () => {
      const a = await api.start('echo a');
      await api.pollCommand(a.id);
      const b = await api.start('echo b');
      await api.pollCommand(b.id);

      const commands = await api.get('/api/bash/bash_events/search', { kind__eq: 'BashCommand' });
      expect(commands.body.items.every((e: Json) => e.kind === 'BashCommand')).toBe(true);
      expect(commands.body.items.map((e: Json) => e.id)).toEqual(expect.arrayContaining([a.id, b.id]));
      const ofB = await api.get('/api/bash/bash_events/search', { command_id__eq: b.id });
      expect(ofB.body.items.map((e: Json) => [e.kind, e.stdout])).toEqual([['BashOutput', 'b\n']]);
      // Dashed ids are accepted too.
      const dashed = b.id.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
      expect((await api.get('/api/bash/bash_events/search', { command_id__eq: dashed })).body.items).toEqual(ofB.body.items);

      const since = await api.get('/api/bash/bash_events/search', { timestamp__gte: b.timestamp });
      expect(since.body.items[0]).toEqual(b);
      const before = await api.get('/api/bash/bash_events/search', { timestamp__lt: b.timestamp, sort_order: 'TIMESTAMP_DESC', limit: 1 });
      expect(before.body.items[0]).toMatchObject({ command_id: a.id, kind: 'BashOutput' });
      expect(before.body.next_page_id).toMatch(/^\d{20}_Bash(Command|Output)_/);
      // Naive and offset timestamps are UTC-compared.
      const offset = new Date(Date.parse(b.timestamp)).toISOString().replace('Z', '+00:00');
      expect((await api.get('/api/bash/bash_events/search', { timestamp__gte: offset.replace('.', '.0') })).status).toBe(200);

      // Paging walks every event exactly once, in order, both ways.
      const all = (await api.get('/api/bash/bash_events/search')).body.items;
      for (const sort_order of ['TIMESTAMP', 'TIMESTAMP_DESC']) {
        const walked: Json[] = [];
        let page: string | null = null;
        do {
          const res: Json = await api.get('/api/bash/bash_events/search', { limit: 2, sort_order, ...(page ? { page_id: page } : {}) });
          walked.push(...res.body.items);
          page = res.body.next_page_id;
        } while (page);
        expect(walked.map((e) => e.id)).toEqual((sort_order === 'TIMESTAMP' ? all : [...all].reverse()).map((e: Json) => e.id));
      }
      // The trailing-slash form of search answers the same.
      expect((await api.get('/api/bash/bash_events/search/', { kind__eq: 'BashCommand' })).body).toEqual(commands.body);

      const invalid: Record<string, string | number>[] = [{ limit: 0 }, { limit: 101 }, { kind__eq: 'Other' }, { command_id__eq: 'nope' }, { timestamp__gte: 'yesterday' }, { sort_order: 'UP' }, { order__gt: 'x' }];
      for (const query of invalid) {
        const res = await api.get('/api/bash/bash_events/search', query);
        expect([JSON.stringify(query), res.status, Array.isArray(res.body.detail)]).toEqual([JSON.stringify(query), 422, true]);
      }

      expect((await api.get(`/api/bash/bash_events/${b.id}`)).body).toEqual(b);
      expect(await api.get(`/api/bash/bash_events/${'0'.repeat(32)}`).then((r) => [r.status, r.body])).toEqual([404, { detail: 'Not Found' }]);
      const batch = await api.getWithBody('/api/bash/bash_events/', [a.id, '0'.repeat(32), b.id]);
      expect([batch.status, batch.body]).toEqual([200, [a, null, b]]);
      expect((await api.getWithBody('/api/bash/bash_events', [a.id])).body).toEqual([a]);
      expect((await api.getWithBody('/api/bash/bash_events/')).status).toBe(422);
      expect((await api.get('/api/bash/bash_events/', { event_ids: b.id })).body).toEqual([b]);
    });

    it('keeps its events across an executor restart, ends commands the stop interrupted, and clears them', async () => {
      const ownRoot = realpathSync(mkdtempSync(join(tmpdir(), 'berth-workspace-restart-')));
      let own = await startExecutor(ownRoot);
      const ownApi = new Api(() => own.port);
      try {
        const done = await ownApi.start('echo kept');
        await ownApi.pollCommand(done.id);
        // A finished command's background process (its pipes let go) runs on until the executor stops.
        const leftoverPid = join(ownRoot, 'leftover.pid');
        expect((await ownApi.execute(`sleep 603 > /dev/null 2>&1 & echo $! > ${leftoverPid}`)).exit_code).toBe(0);
        expect(alive(Number(readFileSync(leftoverPid, 'utf8')))).toBe(true);
        const pidFile = join(ownRoot, 'sleeper.pid');
        const interrupted = await ownApi.start(`echo partial; sleep 602 & echo $! > ${pidFile}; wait`);
        await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
        const before = (await ownApi.get('/api/bash/bash_events/search')).body.items;

        expect(await own.stop()).toBe(0);
        expect(await eventually(() => !alive(Number(readFileSync(pidFile, 'utf8'))))).toBe(true);
        expect(await eventually(() => !alive(Number(readFileSync(leftoverPid, 'utf8'))))).toBe(true);
        own = await startExecutor(ownRoot);

        const after = (await ownApi.get('/api/bash/bash_events/search')).body.items;
        expect(after.slice(0, before.length)).toEqual(before);
        expect((await ownApi.get(`/api/bash/bash_events/${done.id}`)).body).toEqual(done);
        // The command the stop cut short has its end, so pollers finish.
        const ended = await ownApi.pollCommand(interrupted.id);
        expect(ended.exitCode).toBe(-1);
        expect(ended.stdout).toBe('partial\n');
        expect(ended.stderr).toMatch(/stopped while the command was running/);

        const cleared = await ownApi.call('DELETE', '/api/bash/bash_events');
        expect([cleared.status, cleared.body]).toEqual([200, { cleared_count: after.length }]);
        expect((await ownApi.get('/api/bash/bash_events/search')).body).toEqual({ items: [], next_page_id: null });
      } finally {
        await own.stop();
        rmSync(ownRoot, { recursive: true, force: true });
      }
    });

    it('streams bash events on /sockets/bash-events: replay, live events, command frames, errors', async () => {
      const earlier = await api.execute('echo before-socket');
      const base = `ws://127.0.0.1:${executor.port}/sockets/bash-events`;

      const replaying = new BashSocket(`${base}?resend_mode=all`);
      const live = new BashSocket(base);
      await Promise.all([replaying.open(), live.open()]);
      // The replay is every stored event, in order.
      const stored: Json[] = [];
      let page: string | null = null;
      do {
        const res: Json = await api.get('/api/bash/bash_events/search', page ? { page_id: page } : {});
        stored.push(...res.body.items);
        page = res.body.next_page_id;
      } while (page);
      await replaying.waitFor((f) => f.length >= stored.length);
      expect(replaying.frames.slice(0, stored.length).map((e) => e.id)).toEqual(stored.map((e) => e.id));
      expect(replaying.frames.some((e) => e.id === earlier.id)).toBe(true);

      replaying.send({ command: 'echo via-socket; echo oops >&2', timeout: 10 });
      const frames = await replaying.waitFor((f) => f.some((e) => e.kind === 'BashOutput' && e.exit_code === 0 && e.stdout === 'via-socket\n'));
      const started = frames.find((e) => e.kind === 'BashCommand' && e.command === 'echo via-socket; echo oops >&2')!;
      expect(started).toEqual({ id: expect.stringMatching(HEX32), timestamp: expect.stringMatching(UTC), command: expect.any(String), cwd: root, timeout: 10, kind: 'BashCommand' });
      const outputs = frames.filter((e) => e.command_id === started.id);
      const output = outputs[outputs.length - 1];
      expect(output).toMatchObject({ order: outputs.length - 1, exit_code: 0 });
      expect(outputs.map((e) => e.stdout ?? '').join('')).toBe('via-socket\n');
      expect(outputs.map((e) => e.stderr ?? '').join('')).toBe('oops\n');
      // Every frame is sent once.
      expect(new Set(replaying.frames.map((e) => e.id)).size).toBe(replaying.frames.length);
      // The live-only subscriber got the new events, none of the old.
      await live.waitFor((f) => f.some((e) => e.id === output.id));
      expect(live.frames.some((e) => e.id === earlier.id)).toBe(false);
      expect(live.frames.map((e) => e.id)).toEqual([started.id, ...outputs.map((e) => e.id)]);

      // Nulls are kept in socket frames.
      live.send({ command: 'true' });
      const quiet = (await live.waitFor((f) => f.some((e) => e.kind === 'BashOutput' && e.stdout === null && e.exit_code === 0))).find((e) => e.kind === 'BashOutput' && e.stdout === null)!;
      expect(Object.keys(quiet)).toContain('stderr');

      live.send('not json');
      live.send({ cwd: 5 });
      live.send({ type: 'auth', session_api_key: 'ignored' });
      live.send({ command: 'true', cwd: outside });
      const errors = (await live.waitFor((f) => f.filter((e) => e.kind === 'BashError').length >= 3)).filter((e) => e.kind === 'BashError');
      expect(errors.map((e) => e.code)).toEqual(['JSONDecodeError', 'ValidationError', 'HTTPException']);
      for (const error of errors) expect(error).toEqual({ id: expect.stringMatching(HEX32), timestamp: expect.stringMatching(UTC), code: error.code, detail: expect.any(String), kind: 'BashError' });
      replaying.close();
      live.close();

      const legacy = new BashSocket(`${base}?resend_all=true`);
      await legacy.waitFor((f) => f.some((e) => e.id === earlier.id));
      legacy.close();
      const invalid = new BashSocket(`${base}?resend_mode=since`);
      expect(await invalid.waitClosed()).toBe(1008);
    });

    it('reports activity: last call, running commands and running terminals', async () => {
      const first = await api.get('/api/activity');
      expect(first.body).toEqual({ last_activity_at: expect.stringMatching(UTC), running_commands: 0, running_terminals: 0 });
      // Reading the activity is not activity.
      await new Promise((r) => setTimeout(r, 20));
      expect((await api.get('/api/activity')).body.last_activity_at).toBe(first.body.last_activity_at);

      const pidFile = join(root, 'activity-sleeper.pid');
      const sleeper = await api.start(`sleep 30 & echo $! > ${pidFile}; wait`, { timeout: 30 });
      expect((await api.get('/api/activity')).body.running_commands).toBe(1);
      const conversationId = randomUUID();
      const terminal = await api.post('/api/tools/execute', { conversation_id: conversationId, working_dir: join(root, 'term'), tool: 'terminal', action: { command: 'sleep 30' } });
      expect(terminal.body.observation.exit_code).toBe(-1);
      expect((await api.get('/api/activity')).body).toMatchObject({ running_commands: 1, running_terminals: 1 });

      await api.post(`/api/sessions/${conversationId}/close`, {});
      expect(await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '')).toBe(true);
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      await api.pollCommand(sleeper.id);
      const idle = (await api.get('/api/activity')).body;
      expect(idle).toMatchObject({ running_commands: 0, running_terminals: 0 });
      expect(idle.last_activity_at >= first.body.last_activity_at).toBe(true);
    });
  });

  describe('git', () => {
    it('reports changes and diffs of a fresh repository: untracked, modified after a commit, deleted', async () => {
      const repo = join(root, 'repo');
      mkdirSync(repo);
      expect((await api.execute('git init -q && git rev-parse --show-toplevel', { cwd: repo })).stdout).toBe(`${repo}\n`);
      // Before any commit, every new file is ADDED.
      writeFileSync(join(repo, 'keep.txt'), 'one\n');
      writeFileSync(join(repo, 'gone.txt'), 'gone\n');
      expect((await api.get('/api/git/changes', { path: repo })).body).toEqual([
        { status: 'ADDED', path: 'gone.txt' },
        { status: 'ADDED', path: 'keep.txt' },
      ]);
      const commit = await api.execute('git add -A && git -c user.name=t -c user.email=t@example.com commit -qm first && git rev-parse HEAD', { cwd: repo });
      expect(commit.exit_code).toBe(0);
      const sha = commit.stdout.trim();
      expect((await api.get('/api/git/changes', { path: repo })).body).toEqual([]);

      writeFileSync(join(repo, 'keep.txt'), 'two\r\n');
      rmSync(join(repo, 'gone.txt'));
      mkdirSync(join(repo, 'dir'));
      writeFileSync(join(repo, 'dir', 'new file \u00e9.txt'), 'new\n');
      const changes = await api.get('/api/git/changes', { path: repo });
      expect([changes.status, changes.body]).toEqual([
        200,
        [
          { status: 'ADDED', path: 'dir/new file \u00e9.txt' },
          { status: 'DELETED', path: 'gone.txt' },
          { status: 'UPDATED', path: 'keep.txt' },
        ],
      ]);
      expect((await api.get('/api/git/changes', { path: repo, ref: 'HEAD' })).body).toEqual(changes.body);
      expect((await api.get('/api/git/changes', { path: join(repo, 'dir') })).body).toEqual([{ status: 'ADDED', path: 'new file \u00e9.txt' }]);
      // From the sandbox root, the repository inside is reported under its folder; the executor's files never.
      const fromRoot = (await api.get('/api/git/changes', { path: root })).body as Json[];
      expect(fromRoot).toEqual(expect.arrayContaining([{ status: 'UPDATED', path: 'repo/keep.txt' }]));
      expect(fromRoot.some((c) => c.path.startsWith('.berth'))).toBe(false);

      expect((await api.get('/api/git/diff', { path: join(repo, 'keep.txt') })).body).toEqual({ modified: 'two', original: 'one' });
      // With a commit: the change that commit made, from git objects (a root commit: against nothing).
      expect((await api.get('/api/git/diff', { path: join(repo, 'keep.txt'), commit: sha })).body).toEqual({ modified: 'one', original: '' });
      expect((await api.get('/api/git/diff', { path: join(repo, 'dir', 'new file \u00e9.txt') })).body).toEqual({ modified: 'new', original: '' });
      expect((await api.get('/api/git/diff', { path: join(repo, 'gone.txt') })).body).toEqual({ modified: '', original: 'gone' });

      const badRef = await api.get('/api/git/changes', { path: repo, ref: 'no-such-branch' });
      expect(badRef.status).toBe(400);
      const both = await api.get('/api/git/diff', { path: join(repo, 'keep.txt'), ref: 'HEAD', commit: sha });
      expect([both.status, both.body]).toEqual([400, { detail: "'ref' and 'commit' are mutually exclusive" }]);
      expect((await api.get('/api/git/changes', { path: repo, ref: '--output=/tmp/x' })).status).toBe(422);
    });

    it('answers [] and null diffs outside any repository, and git-inits a tool working dir on first use', async () => {
      const ownRoot = realpathSync(mkdtempSync(join(tmpdir(), 'berth-workspace-git-')));
      const own = await startExecutor(ownRoot);
      const ownApi = new Api(() => own.port);
      try {
        mkdirSync(join(ownRoot, 'plain'));
        writeFileSync(join(ownRoot, 'plain', 'f.txt'), 'x');
        expect((await ownApi.get('/api/git/changes', { path: join(ownRoot, 'plain') })).body).toEqual([]);
        expect((await ownApi.get('/api/git/changes', { path: join(ownRoot, 'missing') })).body).toEqual([]);
        expect((await ownApi.get('/api/git/diff', { path: join(ownRoot, 'plain', 'f.txt') })).body).toEqual({ modified: null, original: null });

        const tool = await ownApi.post('/api/tools/execute', {
          conversation_id: randomUUID(),
          working_dir: join(ownRoot, 'project'),
          tool: 'file_editor',
          action: { command: 'create', path: join(ownRoot, 'project', 'app.py'), file_text: 'print(1)\n' },
        });
        expect(tool.body.observation.is_error).toBe(false);
        expect(existsSync(join(ownRoot, 'project', '.git'))).toBe(true);
        expect(existsSync(join(ownRoot, '.git'))).toBe(false);
        expect((await ownApi.get('/api/git/changes', { path: join(ownRoot, 'project') })).body).toEqual([{ status: 'ADDED', path: 'app.py' }]);
        expect((await ownApi.get('/api/git/diff', { path: join(ownRoot, 'project', 'app.py') })).body).toEqual({ modified: 'print(1)', original: '' });
      } finally {
        await own.stop();
        rmSync(ownRoot, { recursive: true, force: true });
      }
    });
  });
});
