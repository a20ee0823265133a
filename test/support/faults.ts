import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Exit, freePort, killProcessesUnder, run, waitFor } from './processes';

/**
 * Fault-test harness: a PostgreSQL and a Redis of the test's own (children it can stop, kill -9,
 * freeze with SIGSTOP, thaw and restart), and Berth gateways/workers (the built entry points) as
 * children against them. Everything started through a FaultLab is ended by `lab.close()` (call it
 * in afterAll), and SIGKILLed synchronously if the test process exits first.
 */

const STOP_TIMEOUT_MS = 10_000;

/** Every process group a lab started; killed if the Jest worker exits without closing its lab. */
const groups = new Set<number>();
process.on('exit', () => {
  for (const pid of groups) signalGroup(pid, 'SIGKILL');
});

/** The process and its descendants (Linux /proc), parents first. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name (which may hold spaces): state, ppid, …
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}

/**
 * Signals a server and every process it forked: its process group, and the descendants that left
 * it (each PostgreSQL backend calls setsid). Parents first, so a frozen parent forks no new child.
 */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, ...processTree(pid)]) {
    try {
      process.kill(target, signal);
    } catch {
      /* already gone */
    }
  }
}

function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
}

/** Sends `signal`, then SIGKILL to the whole group if the process is still there after the timeout. */
async function endProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<Exit> {
  const exited = exitOf(child);
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return exited;
  // A frozen process does not act on SIGTERM/SIGINT until it runs again.
  signalGroup(child.pid, 'SIGCONT');
  child.kill(signal);
  const timer = setTimeout(() => signalGroup(child.pid as number, 'SIGKILL'), STOP_TIMEOUT_MS);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A dependency server (Redis or PostgreSQL) the test controls, always on the same port and data. */
export interface Dependency {
  readonly url: string;
  readonly port: number;
  /** Running (possibly frozen). */
  readonly up: boolean;
  /** Clean shutdown. */
  stop(): Promise<void>;
  /** kill -9 of every process of the server. */
  kill(): Promise<void>;
  /** SIGSTOP to every process of the server: connections stay open, nothing answers. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Starts it again on the same port (and data directory); resolves once it accepts clients. */
  start(): Promise<void>;
  /** Ends it for good and removes its data. */
  close(): Promise<void>;
}

abstract class ChildDependency implements Dependency {
  protected child?: ChildProcess;
  protected output = '';
  abstract readonly url: string;

  constructor(
    readonly port: number,
    protected readonly dir: string,
    private readonly stopSignal: NodeJS.Signals,
  ) {}

  get up(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  protected abstract spawnServer(): ChildProcess;
  protected abstract accepting(): Promise<boolean>;

  async start(): Promise<void> {
    if (this.up) return;
    this.output = '';
    // Its own process group (detached): freeze/kill reach the server's helper processes too.
    const child = this.spawnServer();
    this.child = child;
    groups.add(child.pid as number);
    child.stdout?.on('data', (d) => (this.output += d));
    child.stderr?.on('data', (d) => (this.output += d));
    child.once('exit', () => groups.delete(child.pid as number));
    const deadline = Date.now() + 20_000;
    while (!(await this.accepting())) {
      if (!this.up || Date.now() > deadline) {
        await this.kill();
        throw new Error(`${this.constructor.name} did not start on port ${this.port}: ${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (this.child) await endProcess(this.child, this.stopSignal);
  }

  async kill(): Promise<void> {
    if (!this.child?.pid || !this.up) return;
    const exited = exitOf(this.child);
    signalGroup(this.child.pid, 'SIGKILL');
    await exited;
  }

  freeze(): void {
    if (this.child?.pid && this.up) signalGroup(this.child.pid, 'SIGSTOP');
  }

  thaw(): void {
    if (this.child?.pid && this.up) signalGroup(this.child.pid, 'SIGCONT');
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

class PrivateRedis extends ChildDependency {
  readonly url: string;

  constructor(
    port: number,
    dir: string,
    private readonly persistent: boolean,
  ) {
    super(port, dir, 'SIGTERM');
    this.url = `redis://127.0.0.1:${port}`;
  }

  protected spawnServer(): ChildProcess {
    // Persistent: every write fsynced to the append-only file, so even kill -9 keeps the data.
    const persistence = this.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    return spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', ...persistence], {
      detached: true,
      stdio: 'pipe',
    });
  }

  protected async accepting(): Promise<boolean> {
    try {
      return execFileSync('redis-cli', ['-p', String(this.port), 'ping'], { timeout: 2000, stdio: 'pipe' }).toString().trim() === 'PONG';
    } catch {
      return false;
    }
  }
}

function postgresBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no PostgreSQL under /usr/lib/postgresql');
  return `/usr/lib/postgresql/${versions[0]}/bin/${name}`;
}

/** PostgreSQL refuses to run as root: its processes run as the postgres OS user. */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

class PrivatePostgres extends ChildDependency {
  readonly url: string;
  private readonly user = postgresUser();

  constructor(port: number, dir: string) {
    // SIGINT: PostgreSQL's fast shutdown (ends sessions, no waiting for clients).
    super(port, dir, 'SIGINT');
    this.url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  }

  init(): void {
    chownSync(this.dir, this.user.uid, this.user.gid);
    execFileSync(postgresBin('initdb'), ['-D', join(this.dir, 'data'), '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], {
      ...this.user,
      stdio: 'pipe',
      timeout: 60_000,
    });
  }

  protected spawnServer(): ChildProcess {
    return spawn(
      postgresBin('postgres'),
      ['-D', join(this.dir, 'data'), '-p', String(this.port), '-c', 'listen_addresses=127.0.0.1', '-k', this.dir, '-c', 'fsync=off', '-c', 'max_connections=200'],
      { ...this.user, detached: true, stdio: 'pipe' },
    );
  }

  protected async accepting(): Promise<boolean> {
    try {
      execFileSync(postgresBin('pg_isready'), ['-h', '127.0.0.1', '-p', String(this.port), '-t', '1'], { stdio: 'pipe', timeout: 3000 });
      return true;
    } catch {
      return false;
    }
  }
}

/** A Berth process (gateway or worker) started as a child. */
export interface BerthProcess {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  output(): string;
  /** Still running. */
  readonly alive: boolean;
  /** SIGTERM (graceful), SIGKILL after a timeout. */
  stop(): Promise<Exit>;
  /** kill -9. */
  kill(): Promise<Exit>;
}

export interface BerthOptions {
  /** Extra environment (LOG_LEVEL, BERTH_* settings). */
  env?: Record<string, string>;
  /** Wait for /ready (default) or only /health (a process started during an outage). */
  waitReady?: boolean;
}

/**
 * Owns what a fault test starts: one Redis, one PostgreSQL, one data dir and queue prefix shared by
 * its Berth processes (as replicas on one machine share them). Call close() in afterAll.
 */
export class FaultLab {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'berth-faults-'));
  readonly queuePrefix = `berth-faults-${process.pid}-${Date.now()}`;
  redis!: Dependency;
  postgres!: Dependency;
  private readonly dependencies: Dependency[] = [];
  private readonly processes: BerthProcess[] = [];

  /** A private Redis; `persistent` keeps its data across stop/kill/start (else a restart is empty). */
  async startRedis(options: { persistent?: boolean } = {}): Promise<Dependency> {
    const redis = new PrivateRedis(await freePort(), mkdtempSync(join(tmpdir(), 'berth-redis-')), options.persistent ?? false);
    this.dependencies.push(redis);
    await redis.start();
    this.redis = redis;
    return redis;
  }

  /** A private PostgreSQL cluster (fresh initdb), data kept across stop/kill/start. */
  async startPostgres(): Promise<Dependency> {
    const postgres = new PrivatePostgres(await freePort(), mkdtempSync(join(tmpdir(), 'berth-pg-')));
    this.dependencies.push(postgres);
    postgres.init();
    await postgres.start();
    this.postgres = postgres;
    return postgres;
  }

  /** Environment shared by every Berth process of the lab. */
  baseEnv(): Record<string, string> {
    return {
      DATABASE_URL: this.postgres.url,
      REDIS_URL: this.redis.url,
      BERTH_QUEUE_PREFIX: this.queuePrefix,
      BERTH_DATA_DIR: this.dataDir,
      OH_SECRET_KEY: 'test-secret-key',
      BERTH_WARM_POOL_SIZE: '0',
      LOG_LEVEL: 'warn',
    };
  }

  startGateway(options: BerthOptions = {}): Promise<BerthProcess> {
    return this.startBerth('dist/apps/gateway/src/main.js', { BERTH_ROLE: 'gateway', ...options.env }, options.waitReady);
  }

  startWorker(options: BerthOptions = {}): Promise<BerthProcess> {
    return this.startBerth('dist/apps/worker/src/main.js', options.env ?? {}, options.waitReady);
  }

  private async startBerth(script: string, env: Record<string, string>, waitReady = true): Promise<BerthProcess> {
    const port = await freePort();
    const proc = run(script, ['--host', '127.0.0.1', '--port', String(port)], { ...this.baseEnv(), ...env });
    const url = `http://127.0.0.1:${port}`;
    const berth: BerthProcess = {
      url,
      port,
      child: proc.child,
      exited: proc.exited,
      output: proc.output,
      get alive() {
        return proc.child.exitCode === null && proc.child.signalCode === null;
      },
      stop: () => endProcess(proc.child, 'SIGTERM'),
      kill: () => endProcess(proc.child, 'SIGKILL'),
    };
    this.processes.push(berth);
    try {
      await waitFor(`${url}/${waitReady ? 'ready' : 'health'}`, 200, 30_000);
    } catch (err) {
      await berth.kill();
      throw new Error(`${script} did not become ${waitReady ? 'ready' : 'healthy'}: ${(err as Error).message}\n${proc.output()}`);
    }
    return berth;
  }

  /** Ends every Berth process (SIGTERM, then SIGKILL), executors left in the data dir, the servers. */
  async close(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop()));
    killProcessesUnder(this.dataDir);
    await Promise.all(this.dependencies.map((d) => d.close()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
