import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { projectRoot } from '@berth/config';
import { ExecutorClient } from './executor-client';
import { LocalSandboxHandle, SandboxDriver, SandboxError, SandboxHandle, SandboxSpec, SandboxStatus } from './sandbox-driver';

export interface LocalSandboxDriverOptions {
  /** Sandboxes live in `<dataDir>/sandboxes/<id>/`. */
  dataDir: string;
  /** The executor's compiled entry point; default `<projectRoot>/dist/apps/executor/src/main.js`. */
  executorEntry?: string;
  /** How long an executor may take to print its ready line. */
  startTimeoutMs?: number;
  /** Executors kept started and waiting for a sandbox, so that a provision need not start one (default 0). */
  warmPoolSize?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;
const EXIT_POLL_MS = 50;
/** The parent's variables an executor inherits; nothing else (no database, Redis or LLM credentials). */
const INHERITED_ENV = ['PATH', 'LANG'];
/** `<dataDir>/sandboxes/.pool/`: where warm-pool executors wait (not a uuid, so never a sandbox's folder). */
const POOL_DIR = '.pool';
const POOL_REFILL_DELAY_MS = 1000;

/** An executor this driver runs: its own child, or one adopted from a handle of an earlier process. */
interface Executor {
  /** its sandbox's id; '' while it waits in the warm pool */
  id: string;
  pid: number;
  port: number;
  token: string;
  root: string;
  child?: ChildProcess;
  /** Set when the driver ends it, so that its exit is not taken for a crash. */
  stopping: boolean;
  /** where its stdout and stderr go (a pooled executor's log moves into its sandbox when claimed) */
  logPath?: string;
}

/**
 * Runs each sandbox's executor as a child process of this one, in its own folder under the data
 * directory. No isolation beyond the folder and a clean environment: for the embedded default and
 * tests, not for untrusted tenants.
 */
export class LocalSandboxDriver extends SandboxDriver {
  readonly kind = 'local' as const;
  private readonly logger = new Logger('LocalSandboxDriver');
  private readonly sandboxesDir: string;
  private readonly executorEntry: string;
  private readonly startTimeoutMs: number;
  private readonly executors = new Map<string, Executor>();
  /** Sandboxes whose executor died without being asked to. */
  private readonly crashed = new Set<string>();
  /** The tail of each sandbox's queue of lifecycle operations, which run one at a time. */
  private readonly locks = new Map<string, Promise<void>>();
  private closed = false;
  private readonly warmPoolSize: number;
  /** Dormant executors (BERTH_EXECUTOR_DORMANT) waiting for a sandbox, and how many are starting. */
  private readonly pool: Executor[] = [];
  private warming = 0;

  constructor(options: LocalSandboxDriverOptions) {
    super();
    this.sandboxesDir = join(options.dataDir, 'sandboxes');
    this.executorEntry = options.executorEntry ?? join(projectRoot(), 'dist/apps/executor/src/main.js');
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.warmPoolSize = options.warmPoolSize ?? 0;
  }

  /** Executors started and waiting for a sandbox now. */
  get warmExecutors(): number {
    return this.pool.length;
  }

  /** Tops the warm pool up to its size, in the background. */
  override warm(): void {
    while (!this.closed && this.pool.length + this.warming < this.warmPoolSize) {
      this.warming++;
      const token = newToken();
      // Its future sandbox folder, made ready (git init, log) while it waits; moved into place when claimed.
      const staging = join(this.sandboxesDir, POOL_DIR, token.slice(0, 16).replace(/[^A-Za-z0-9]/g, '0'));
      mkdir(join(staging, '.berth'), { recursive: true, mode: 0o700 })
        .then(() => this.spawn('', token, staging, join(staging, '.berth', 'executor.log'), { BERTH_EXECUTOR_DORMANT: '1', BERTH_SANDBOX_ROOT: staging }))
        .then(
          (executor) => {
            if (this.closed) void this.discard(executor);
            else this.pool.push(executor);
          },
          (err: Error) => {
            this.logger.warn(`warm pool: ${err.message}`);
            void rm(staging, { recursive: true, force: true });
          },
        )
        .finally(() => this.warming--);
    }
  }

  /**
   * A pooled executor made this sandbox's: its staging folder moved to the sandbox's place, then it
   * is told the folder and the variables. Null when the pool is empty or the executor refuses (the
   * caller starts one cold).
   */
  private async claimPooled(id: string, root: string, env: Record<string, string>): Promise<Executor | null> {
    const pooled = this.pool.shift();
    if (!pooled) return null;
    this.refillSoon();
    try {
      await rename(pooled.root, root);
      await chmod(root, 0o700);
      await new ExecutorClient(handleOf(pooled)).init(root, env, { timeoutMs: PROBE_TIMEOUT_MS });
    } catch (err) {
      this.logger.warn(`warm pool: executor ${pooled.pid} could not take sandbox ${id}: ${(err as Error).message}`);
      await this.terminate(pooled);
      return null;
    }
    Object.assign(pooled, { id, root, logPath: join(root, '.berth', 'executor.log') });
    this.executors.set(id, pooled);
    this.crashed.delete(id);
    return pooled;
  }

  /** A refill starts a Node process (~100 ms of CPU): a moment later, not while a new sandbox takes its first calls. */
  private refillSoon(): void {
    if (!this.closed) setTimeout(() => this.warm(), POOL_REFILL_DELAY_MS).unref();
  }

  /** Ends a pooled executor that will serve no sandbox, and its staging folder. */
  private async discard(executor: Executor): Promise<void> {
    await this.terminate(executor);
    await rm(executor.root, { recursive: true, force: true });
  }

  async provision(spec: SandboxSpec): Promise<SandboxHandle> {
    const root = this.rootOf(spec.id);
    const env = checkEnv(spec.env ?? {});
    return this.serialize(spec.id, async () => {
      this.checkOpen();
      // A retried provision gets the executor the first one started.
      const current = this.executors.get(spec.id);
      if (current && (await answers(current))) return handleOf(current);
      if (current) await this.terminate(current);
      await mkdir(this.sandboxesDir, { recursive: true, mode: 0o700 });
      await writeFile(this.specFile(spec.id), JSON.stringify({ env }), { mode: 0o600 });
      // A new sandbox takes a pooled executor with its folder; an existing folder keeps its files.
      const warm = existsSync(root) ? null : await this.claimPooled(spec.id, root, env);
      if (warm) return handleOf(warm);
      await mkdir(root, { recursive: true, mode: 0o700 });
      await chmod(root, 0o700);
      return handleOf(await this.start(spec.id, newToken(), root, env));
    });
  }

  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    this.check(handle);
    const current = this.executors.get(handle.id);
    if (current) return (await answers(current)) ? 'running' : 'error';
    const earlier = await inspectEarlier(handle);
    if (earlier !== 'gone') return earlier === 'answering' ? 'running' : 'error';
    return this.crashed.has(handle.id) ? 'error' : 'stopped';
  }

  async ensureRunning(handle: SandboxHandle): Promise<SandboxHandle> {
    const root = this.check(handle);
    return this.serialize(handle.id, async () => {
      this.checkOpen();
      const current = this.executors.get(handle.id);
      if (current) {
        if (await answers(current)) return handleOf(current);
        await this.terminate(current);
      } else {
        // A handle stored by an earlier process (a gateway restart): take its executor over if it still answers.
        const earlier = await inspectEarlier(handle);
        if (earlier === 'answering') return handleOf(this.adopt(handle, root));
        if (earlier === 'silent') await this.terminate(this.adopt(handle, root));
      }
      if (!existsSync(root)) throw new SandboxError(`sandbox ${handle.id} has no folder (destroyed?)`);
      return handleOf(await this.start(handle.id, handle.token, root, await this.readSpecEnv(handle.id)));
    });
  }

  async stop(handle: SandboxHandle): Promise<void> {
    const root = this.check(handle);
    return this.serialize(handle.id, () => this.stopExecutor(handle, root));
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const root = this.check(handle);
    return this.serialize(handle.id, async () => {
      await this.stopExecutor(handle, root);
      await rm(root, { recursive: true, force: true });
      await rm(this.specFile(handle.id), { force: true });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    // Operations under way may still start an executor: let them finish, then stop everything.
    await Promise.allSettled([...this.locks.values()]);
    await Promise.all([...this.executors.values()].map((executor) => this.terminate(executor)));
    await Promise.all(this.pool.splice(0).map((executor) => this.discard(executor)));
  }

  private async stopExecutor(handle: SandboxHandle, root: string): Promise<void> {
    const current = this.executors.get(handle.id);
    if (current) await this.terminate(current);
    else if ((await inspectEarlier(handle)) !== 'gone') await this.terminate(this.adopt(handle, root));
    this.crashed.delete(handle.id);
  }

  private async start(id: string, token: string, root: string, extraEnv: Record<string, string>): Promise<Executor> {
    const logDir = join(root, '.berth');
    await mkdir(logDir, { recursive: true, mode: 0o700 });
    const executor = await this.spawn(id, token, root, join(logDir, 'executor.log'), {
      ...extraEnv,
      BERTH_SANDBOX_ROOT: root,
      // Which of its variables the executor hands on to the sandbox's shells.
      BERTH_SANDBOX_ENV_NAMES: Object.keys(extraEnv).join(','),
    });
    this.executors.set(id, executor);
    this.crashed.delete(id);
    return executor;
  }

  /** Starts an executor process in `cwd` with `vars` (and nothing of this process's environment but PATH and LANG). */
  private async spawn(id: string, token: string, cwd: string, logPath: string, vars: Record<string, string>): Promise<Executor> {
    const log = await open(logPath, 'a', 0o600);
    const logStart = (await log.stat()).size;
    const env: Record<string, string> = {};
    for (const name of INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name]!;
    // The driver's own variables come last: a spec cannot replace the token or the port.
    Object.assign(env, vars, { BERTH_SANDBOX_TOKEN: token, BERTH_EXECUTOR_PORT: '0' });
    let child: ChildProcess;
    try {
      // stderr goes straight to the file (not through us), so it keeps working if this process dies first.
      child = spawn(process.execPath, [this.executorEntry], { cwd, env, stdio: ['ignore', 'pipe', log.fd], detached: false });
    } finally {
      await log.close();
    }
    const label = id ? `executor of sandbox ${id}` : 'pooled executor';
    child.on('error', (err) => this.logger.warn(`${label}: ${err.message}`));
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    let port: number;
    try {
      const ready = await readReadyLine(child, this.startTimeoutMs);
      port = ready.port;
      // Anything after the ready line is the executor's business: keep it with its log.
      const out = createWriteStream(logPath, { flags: 'a' }).on('error', () => undefined);
      out.write(ready.rest);
      child.stdout!.pipe(out);
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      const stderr = await readTail(logPath, logStart);
      throw new SandboxError(`${label} did not start: ${(err as Error).message}${stderr ? `; stderr: ${stderr}` : ''}`);
    }
    const executor: Executor = { id, pid: child.pid!, port, token, root: cwd, child, stopping: false, logPath };
    child.once('exit', (code, signal) => {
      const pooled = this.pool.indexOf(executor);
      if (pooled >= 0) {
        // A waiting executor died: the pool heals itself.
        this.pool.splice(pooled, 1);
        this.refillSoon();
        return;
      }
      if (this.executors.get(executor.id) === executor) this.executors.delete(executor.id);
      if (executor.stopping || !executor.id) return;
      this.crashed.add(executor.id);
      this.logger.warn(`executor of sandbox ${executor.id} exited on its own (${signal ?? `code ${code}`}); see ${join(executor.root, '.berth', 'executor.log')}`);
    });
    return executor;
  }

  /** Takes over an executor started by an earlier process, from its handle. */
  private adopt(handle: SandboxHandle, root: string): Executor {
    const executor = fromHandle(handle, root);
    this.executors.set(handle.id, executor);
    return executor;
  }

  /** SIGTERM, up to STOP_GRACE_MS to exit, then SIGKILL. */
  private async terminate(executor: Executor): Promise<void> {
    executor.stopping = true;
    signal(executor, 'SIGTERM');
    if (!(await waitForExit(executor, STOP_GRACE_MS))) {
      signal(executor, 'SIGKILL');
      if (!(await waitForExit(executor, STOP_GRACE_MS))) this.logger.warn(`executor ${executor.pid} of sandbox ${executor.id} survived SIGKILL`);
    }
    if (this.executors.get(executor.id) === executor) this.executors.delete(executor.id);
  }

  private serialize<T>(id: string, operation: () => Promise<T>): Promise<T> {
    const result = (this.locks.get(id) ?? Promise.resolve()).then(operation);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return result;
  }

  private checkOpen(): void {
    if (this.closed) throw new SandboxError('the sandbox driver is closed');
  }

  private rootOf(id: string): string {
    // The id becomes a path: only a uuid may.
    if (typeof id !== 'string' || !UUID.test(id)) throw new SandboxError(`sandbox id must be a uuid, got ${JSON.stringify(id)}`);
    return join(this.sandboxesDir, id);
  }

  /**
   * Checks a handle (it may come from the database) before acting on it, and returns the sandbox's
   * folder as this driver places it — never the handle's `root`, which `destroy` would delete.
   */
  private check(handle: SandboxHandle): string {
    if (handle?.driver !== 'local') throw new SandboxError(`not a local sandbox handle: ${JSON.stringify(handle?.driver)}`);
    const root = this.rootOf(handle.id);
    // kill(0 or -1) would signal whole process groups, and a handle must never name us.
    if (!Number.isInteger(handle.pid) || handle.pid <= 1 || handle.pid === process.pid || handle.pid === process.ppid) {
      throw new SandboxError(`sandbox ${handle.id}: invalid pid ${JSON.stringify(handle.pid)}`);
    }
    // Only loopback addresses: a handle must not turn the driver into a client of arbitrary hosts.
    if (typeof handle.url !== 'string' || !/^http:\/\/127\.0\.0\.1:\d{1,5}$/.test(handle.url)) {
      throw new SandboxError(`sandbox ${handle.id}: invalid url ${JSON.stringify(handle.url)}`);
    }
    if (typeof handle.token !== 'string' || !handle.token) throw new SandboxError(`sandbox ${handle.id}: missing token`);
    return root;
  }

  /** The spec's variables live beside the folder, not in it: the sandbox must not rewrite its own restart environment. */
  private specFile(id: string): string {
    return join(this.sandboxesDir, `${id}.env.json`);
  }

  private async readSpecEnv(id: string): Promise<Record<string, string>> {
    try {
      return checkEnv(JSON.parse(await readFile(this.specFile(id), 'utf8')).env ?? {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
  }
}

function handleOf(executor: Executor): LocalSandboxHandle {
  return { driver: 'local', id: executor.id, url: `http://127.0.0.1:${executor.port}`, token: executor.token, root: executor.root, pid: executor.pid };
}

function fromHandle(handle: SandboxHandle, root: string): Executor {
  return { id: handle.id, pid: handle.pid, port: Number(new URL(handle.url).port), token: handle.token, root, stopping: false };
}

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

function checkEnv(env: unknown): Record<string, string> {
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new SandboxError('sandbox env must be an object of strings');
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name) || typeof value !== 'string' || value.includes('\0')) throw new SandboxError(`invalid sandbox env variable ${JSON.stringify(name)}`);
  }
  return env as Record<string, string>;
}

/** Health answers (any executor does), and the token is accepted (only this sandbox's does). */
async function answers(executor: Executor, verifyToken = false): Promise<boolean> {
  const client = new ExecutorClient({ url: `http://127.0.0.1:${executor.port}`, token: executor.token });
  try {
    await client.health({ timeoutMs: PROBE_TIMEOUT_MS });
    return !verifyToken || (await client.acceptsToken({ timeoutMs: PROBE_TIMEOUT_MS }));
  } catch {
    return false;
  }
}

/**
 * What became of the executor named by a handle this driver did not start: `answering` (alive, ours,
 * healthy), `silent` (ours, alive, not answering) or `gone`. The pid and the port may both have been
 * reused since — by any process, or by another sandbox's executor — so the token decides: in the
 * process's environment where /proc exists, and by the executor accepting it.
 */
async function inspectEarlier(handle: SandboxHandle): Promise<'answering' | 'silent' | 'gone'> {
  if (!pidAlive(handle.pid)) return 'gone';
  const owned = await holdsToken(handle.pid, handle.token);
  if (owned === false) return 'gone';
  if (await answers(fromHandle(handle, handle.root), true)) return 'answering';
  // Without /proc a silent process cannot be told apart from a stranger that took the pid.
  return owned ? 'silent' : 'gone';
}

/** Whether process `pid` was started with this token; undefined where /proc is not available. */
async function holdsToken(pid: number, token: string): Promise<boolean | undefined> {
  try {
    return (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').includes(`BERTH_SANDBOX_TOKEN=${token}`);
  } catch {
    return existsSync('/proc/self/environ') ? false : undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone; EPERM: another user's process, so not an executor of ours.
    return false;
  }
}

function signal(executor: Executor, name: NodeJS.Signals): void {
  if (executor.child) {
    if (executor.child.exitCode === null && executor.child.signalCode === null) executor.child.kill(name);
    return;
  }
  try {
    process.kill(executor.pid, name);
  } catch {
    // Already gone.
  }
}

/** Resolves true once the executor has exited, false after `timeoutMs`. */
async function waitForExit(executor: Executor, timeoutMs: number): Promise<boolean> {
  const child = executor.child;
  const exited = (): boolean => (child ? child.exitCode !== null || child.signalCode !== null : !pidAlive(executor.pid));
  if (exited()) return true;
  if (child) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(exited()), timeoutMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
  // Not our child: no exit event, so poll.
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
    if (exited()) return true;
  }
  return false;
}

/** Reads the executor's first stdout line, `{"executor":"ready","port":N}`; `rest` is what followed it. */
function readReadyLine(child: ChildProcess, timeoutMs: number): Promise<{ port: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const finish = (err: Error | null, ready?: { port: number; rest: Buffer }): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) reject(err);
      else resolve(ready!);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(0x0a);
      if (end < 0) {
        if (buffered.length > 4096) finish(new Error('no ready line in the first 4 KiB of output'));
        return;
      }
      const line = buffered.subarray(0, end).toString('utf8');
      const ready = parseReady(line);
      if (ready === undefined) finish(new Error(`unexpected first line ${JSON.stringify(line.slice(0, 200))}`));
      else finish(null, { port: ready, rest: buffered.subarray(end + 1) });
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null): void => finish(new Error(`exited (${sig ?? `code ${code}`}) before it was ready`));
    const onError = (err: Error): void => finish(err);
    const timer = setTimeout(() => finish(new Error(`no ready line within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

function parseReady(line: string): number | undefined {
  try {
    const ready = JSON.parse(line) as { executor?: unknown; port?: unknown };
    const port = ready.port;
    return ready.executor === 'ready' && typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
  } catch {
    return undefined;
  }
}

/** The end of what the executor wrote to its log since `offset` (for error messages). */
async function readTail(path: string, offset: number): Promise<string> {
  try {
    const text = (await readFile(path)).subarray(offset).toString('utf8').trim();
    return text.length > 2000 ? `…${text.slice(-2000)}` : text;
  } catch {
    return '';
  }
}
