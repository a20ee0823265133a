import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfig } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { sha256Hex } from '@berth/crypto';
import { Database } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { WebSocket } from 'ws';
import { createGatewayApp } from '../../apps/gateway/src/app.factory';

export type Storage = 'postgres' | 'embedded';

/** Both storage modes every end-to-end suite runs against. */
export const STORAGES: Storage[] = ['postgres', 'embedded'];

export interface TestServer {
  app: NestFastifyApplication;
  config: BerthConfig;
  url: string;
  wsUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

/** A queue prefix of this test run's own: global-teardown removes every Redis key under it. */
export function testQueuePrefix(): string {
  return `${process.env.BERTH_TEST_KEY_PREFIX ?? 'berth-test'}-${randomUUID()}`;
}

/**
 * A real gateway on 127.0.0.1 (random port): PostgreSQL + Redis for 'postgres', embedded PGlite and
 * in-process bus/queue for 'embedded'. `env` adds configuration as the process environment would.
 */
export async function startServer(
  storage: Storage,
  env: Record<string, string> = {},
  dataDir?: string,
  options: { waitReady?: boolean; port?: number } = {},
): Promise<TestServer> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'berth-test-'));
  const base: Record<string, string> = {
    BERTH_DATA_DIR: dir,
    LOG_LEVEL: 'error',
    OH_SECRET_KEY: 'test-secret-key',
    BERTH_QUEUE_PREFIX: testQueuePrefix(),
    // Gateway-only unless a suite asks for workers (BERTH_ROLE: 'all'): runs stay queued.
    BERTH_ROLE: 'gateway',
    // Executors start on demand unless a suite asks for a warm pool (two cores: no idle executors per server).
    BERTH_WARM_POOL_SIZE: '0',
  };
  if (storage === 'postgres') {
    base.DATABASE_URL = process.env.BERTH_TEST_DATABASE_URL as string;
    base.REDIS_URL = process.env.BERTH_TEST_REDIS_URL as string;
  }
  const config = loadConfig({ ...base, ...env }, ['--port', '0']);
  const app = await createGatewayApp(config);
  // A fixed port only to restart a server where its clients left it.
  await app.listen(options.port ?? 0, '127.0.0.1');
  if (options.waitReady !== false) await app.get(Database).ready;
  const address = app.getHttpServer().address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  return {
    app,
    config,
    url,
    wsUrl: url.replace('http', 'ws'),
    dataDir: dir,
    async close() {
      await app.close();
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Registers a server for the enclosing describe block (started before its tests, closed after) and
 * returns accessors: `ctx.server` and `ctx.call(method, path, body)` with the given key.
 */
export function useServer(storage: Storage, env: Record<string, string>, key?: string, options: { ownDatabase?: boolean } = {}) {
  const ctx = {
    server: undefined as unknown as TestServer,
    call: <T = any>(method: string, path: string, body?: unknown) => api<T>(ctx.server, method, path, { body, key }),
  };
  let database: { url: string; drop(): Promise<void> } | null = null;
  beforeAll(async () => {
    database = storage === 'postgres' && options.ownDatabase ? await privateDatabase('own') : null;
    ctx.server = await startServer(storage, database ? { ...env, DATABASE_URL: database.url } : env);
  });
  afterAll(async () => {
    await ctx.server?.close();
    await database?.drop();
  });
  return ctx;
}

/**
 * A PostgreSQL database of the caller's own (the run's shared one is BERTH_TEST_DATABASE_URL), for
 * suites that must not meet another suite's rows: the default tenant's home sandbox is found by
 * tenant, and one made by a server with another data dir is not this server's to use; run counts
 * are server-wide.
 */
export async function privateDatabase(label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = process.env.BERTH_TEST_ADMIN_URL ?? process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `${process.env.BERTH_TEST_DATABASE_NAME ?? `berth_test_${process.pid}`}_${label}_${randomUUID().slice(0, 8)}`;
  const run = async (sql: string) => {
    const client = new Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE "${name}"`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

/**
 * Two gateway replicas sharing one PostgreSQL database, one Redis, one queue prefix and one data
 * dir (local sandboxes live on one machine), started for the enclosing describe block: what one
 * replica changes, the other must see.
 */
export function useReplicas(env: Record<string, string>) {
  const replicas = { a: undefined as unknown as TestServer, b: undefined as unknown as TestServer };
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-test-'));
  beforeAll(async () => {
    const shared = { ...env, BERTH_QUEUE_PREFIX: testQueuePrefix() };
    replicas.a = await startServer('postgres', shared, dataDir);
    replicas.b = await startServer('postgres', shared, dataDir);
  });
  afterAll(async () => {
    await Promise.all([replicas.a?.close(), replicas.b?.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  });
  return replicas;
}

/** A tenant made through the admin API, with quotas if given, and one key of its own. */
export async function adminTenantWithKey(server: { url: string }, adminKey: string, quotas?: Record<string, unknown>) {
  const tenant = await api(server, 'POST', '/api/admin/tenants', { body: { name: `tenant-${randomUUID()}`, ...(quotas ? { quotas } : {}) }, key: adminKey });
  expect(tenant.status).toBe(201);
  const created = await api(server, 'POST', `/api/admin/tenants/${tenant.body.id}/api-keys`, { body: { name: 'test' }, key: adminKey });
  expect(created.status).toBe(201);
  return { tenantId: tenant.body.id as string, key: created.body.key as string, keyId: created.body.id as string };
}

/** A tenant of its own with one API key (stored hashed, as tenant keys are). */
export async function createTenant(server: TestServer): Promise<{ tenantId: string; key: string }> {
  const db = server.app.get(Database);
  const tenantId = randomUUID();
  const key = `tenant-key-${randomUUID()}`;
  await db.prisma.tenant.create({ data: { id: tenantId, name: `t-${tenantId}` } });
  await db.prisma.apiKey.create({ data: { id: randomUUID(), tenantId, name: 'test', prefix: key.slice(0, 8), keyHash: sha256Hex(key) } });
  return { tenantId, key };
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** JSON over real HTTP. */
export async function api<T = any>(
  server: { url: string },
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string; key?: string; headers?: Record<string, string> } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.key) headers['X-Session-API-Key'] = options.key;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const { status, text, responseHeaders } =
    body !== undefined && (method === 'GET' || method === 'HEAD')
      ? await requestWithBody(server.url + path, method, headers, body) // fetch refuses GET bodies; OpenHands uses them
      : await fetch(server.url + path, { method, headers, body }).then(async (r) => ({ status: r.status, text: await r.text(), responseHeaders: r.headers }));
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status, body: parsed as T, headers: responseHeaders };
}

function requestWithBody(url: string, method: string, headers: Record<string, string>, body: string) {
  return new Promise<{ status: number; text: string; responseHeaders: Headers }>((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const responseHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') responseHeaders.set(k, v);
        resolve({ status: res.statusCode as number, text: Buffer.concat(chunks).toString('utf8'), responseHeaders });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const AGENT = {
  kind: 'Agent',
  llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-test-should-never-leak', base_url: 'http://127.0.0.1:9/v1' },
  tools: [{ name: 'terminal' }, { name: 'file_editor' }, { name: 'task_tracker' }],
};

export function startRequest(extra: Record<string, unknown> = {}) {
  return { agent: AGENT, workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' }, ...extra };
}

export function userMessage(text: string, run = false) {
  return { role: 'user', content: [{ type: 'text', text }], run };
}

/** A WebSocket client that records every frame and the close code. */
export class SocketClient {
  readonly frames: any[] = [];
  closeCode: number | null = null;
  closeReason = '';
  readonly ws: WebSocket;
  private readonly opened: Promise<void>;
  private readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.notify();
        resolve();
      });
    });
    this.ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()));
      this.notify();
    });
    this.ws.on('error', () => undefined);
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  open(): Promise<void> {
    return this.opened;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves when `predicate` holds over the frames received so far (or rejects after a timeout). */
  async waitFor(predicate: (frames: any[]) => boolean, timeoutMs = 10_000, what = 'frames'): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.frames)) {
      if (this.closeCode !== null && !predicate(this.frames)) {
        throw new Error(`socket closed (${this.closeCode} ${this.closeReason}) while waiting for ${what}; got ${JSON.stringify(this.frames.map((f) => f.kind))}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames.map((f) => f.kind ?? f.type + ":" + (f.event?.kind ?? "") + (f.event?.key ?? "")))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames;
  }

  async waitClosed(timeoutMs = 10_000): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs)));
    try {
      await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
    return this.closeCode as number;
  }

  close(): void {
    this.ws.close();
  }
}

/** Every stored event of a conversation, oldest first, read page by page from `/events/search`. */
export async function storedEvents(server: { url: string }, key: string | undefined, id: string): Promise<any[]> {
  const out: any[] = [];
  const search = `/api/conversations/${id}/events/search?limit=100`;
  for (let page = await api(server, 'GET', search, { key }); ; ) {
    out.push(...page.body.items);
    if (!page.body.next_page_id) return out;
    page = await api(server, 'GET', `${search}&page_id=${page.body.next_page_id}`, { key });
  }
}

/** Polls a conversation until its execution status is one of `statuses`; its ConversationInfo then. */
export async function waitForStatus(server: { url: string }, key: string | undefined, id: string, statuses: string[], timeoutMs = 60_000, pollMs = 50): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await api(server, 'GET', `/api/conversations/${id}`, { key })).body;
    if (statuses.includes(info.execution_status)) return info;
    if (Date.now() > deadline) throw new Error(`status stayed ${info.execution_status}, wanted ${statuses.join('|')}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
