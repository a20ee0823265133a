import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { chmod, chown, FileHandle, lchown, lstat, mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer, Server } from 'node:net';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Logger } from '@nestjs/common';
import { projectRoot } from '@berth/config';
import type { SandboxIsolationMode } from '@berth/config';
import { ExecutorClient, executorSocket } from './executor-client';
import { BWRAP, bwrapArgs, childrenOf, etcFiles, prlimitArgs, probeBubblewrap, SandboxCgroups, SandboxLimits, SandboxNetwork, sandboxUid, startEgress } from './isolation';
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
  /** `bwrap` (default): each executor in its own namespaces as its own uid, with limits; `none`: a plain child process. */
  isolation?: SandboxIsolationMode;
  /** A sandbox's network when its spec names none (default `none`: its own loopback only). */
  network?: SandboxNetwork;
  /** First sandbox uid when this process runs as root (default 100000). */
  uidBase?: number;
  /** What one sandbox may use (defaults: DEFAULT_LIMITS). */
  limits?: Partial<SandboxLimits>;
  /** How often folders are measured against `limits.diskBytes` (default 30 s). */
  diskCheckIntervalMs?: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  memoryBytes: 2048 * 1024 * 1024,
  processes: 512,
  openFiles: 4096,
  cpuSeconds: 3600,
  fileSizeBytes: 2048 * 1024 * 1024,
  diskBytes: 10_240 * 1024 * 1024,
};

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
/**
 * `<dataDir>/sandboxes/.sockets/`: the executors' unix sockets and `.logs/` their logs, 0700 and
 * this process's: no sandbox sees them, so none can replace its socket (with a link to a host
 * socket the gateway would then talk to) or its log (with a link to a host file we would append to).
 */
const SOCKETS_DIR = '.sockets';
const LOGS_DIR = '.logs';
const POOL_REFILL_DELAY_MS = 1000;
const DEFAULT_DISK_CHECK_MS = 30_000;
const MAX_SOCKET_PATH = 107;
/** The executor's code a jail sees read-only, relative to the project root (not the root itself: the data dir defaults to ./workspace in it). */
const CODE_PATHS = ['dist', 'node_modules', 'package.json'];

/** An executor this driver runs: its own child, or one adopted from a handle of an earlier process. */
interface Executor {
  /** its sandbox's id; '' while it waits in the warm pool */
  id: string;
  /** the executor's pid on this host */
  pid: number;
  /** bwrap's init of its pid namespace (killing it ends everything in the sandbox); none without isolation */
  init?: number;
  /** slirp4netns giving it egress */
  egress?: number;
  /** its listening socket, made by the driver */
  socket: string;
  token: string;
  root: string;
  /** what its socket, log and cgroups are named after: the sandbox id, or `pool-…` while it waits */
  name: string;
  child?: ChildProcess;
  /** Set when the driver ends it, so that its exit is not taken for a crash. */
  stopping: boolean;
  /** where its stdout and stderr go (a pooled executor's log moves into its sandbox when claimed) */
  logPath?: string;
}

/**
 * Runs each sandbox's executor as a child process of this one, in its own folder under the data
 * directory, reached over a unix socket the driver makes. With isolation `bwrap` (the default) the
 * executor and everything it starts live in bubblewrap: new user, pid, mount, ipc, uts, network
 * and cgroup namespaces, no capabilities, a host uid of its own (when this process is root), a root
 * made of read-only system folders, the executor's code, its own folder and a private /tmp, and
 * limits (rlimits, cgroups where the machine allows, a disk check). With `none`: a plain child
 * process, for development only.
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
  readonly isolation: SandboxIsolationMode;
  private readonly network: SandboxNetwork;
  private readonly uidBase: number;
  private readonly limits: SandboxLimits;
  private readonly cgroups: SandboxCgroups;
  private readonly diskTimer: NodeJS.Timeout | null;

  constructor(options: LocalSandboxDriverOptions) {
    super();
    this.sandboxesDir = join(options.dataDir, 'sandboxes');
    this.executorEntry = options.executorEntry ?? join(projectRoot(), 'dist/apps/executor/src/main.js');
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.isolation = options.isolation ?? 'bwrap';
    this.network = options.network ?? 'none';
    this.uidBase = options.uidBase ?? 100_000;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    if (this.isolation === 'bwrap') {
      const unusable = bubblewrapProblem(this.uidBase);
      if (unusable) throw new SandboxError(`sandboxes cannot be isolated: ${unusable}. Install bubblewrap (and allow user namespaces), or set BERTH_SANDBOX_ISOLATION=none to run them unisolated`);
      this.cgroups = SandboxCgroups.detect();
    } else {
      this.logger.warn('BERTH_SANDBOX_ISOLATION=none: SANDBOXES ARE NOT ISOLATED. Code in a sandbox runs as this server\'s user and can read its files, environment and every other sandbox. Development only.');
      this.cgroups = SandboxCgroups.none();
    }
    // A unix socket's path has at most 107 bytes (a longer one is silently cut by the kernel's sockaddr).
    if (Buffer.byteLength(this.socketOf(randomUUID())) > MAX_SOCKET_PATH) {
      throw new SandboxError(`the data dir ${options.dataDir} is too long a path for executor sockets (at most ${MAX_SOCKET_PATH - 61} bytes)`);
    }
    this.warmPoolSize = options.warmPoolSize ?? 0;
    const diskEvery = options.diskCheckIntervalMs ?? DEFAULT_DISK_CHECK_MS;
    this.diskTimer = this.limits.diskBytes > 0 && diskEvery > 0 ? setInterval(() => void this.checkDisks(), diskEvery).unref() : null;
  }

  /** Executors started and waiting for a sandbox now. */
  get warmExecutors(): number {
    return this.pool.length;
  }
  /** Tops the warm pool up to its size, in the background. */
  override warm(): void {
    // A jail's mounts are fixed when it starts, before its sandbox's id is known: isolated sandboxes start cold.
    if (this.isolation !== 'none') return;
    while (!this.closed && this.pool.length + this.warming < this.warmPoolSize) {
      this.warming++;
      const token = newToken();
      const name = `pool-${token.slice(0, 16).replace(/[^A-Za-z0-9]/g, '0')}`;
      // Its future sandbox folder, made ready (git init) while it waits; moved into place when claimed.
      const staging = join(this.sandboxesDir, POOL_DIR, name);
      mkdir(staging, { recursive: true, mode: 0o700 })
        .then(() => this.spawn({ id: '', name, token, root: staging, network: this.network, vars: { BERTH_EXECUTOR_DORMANT: '1', BERTH_SANDBOX_ROOT: staging } }))
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
   * A pooled executor made this sandbox's: its staging folder, socket and log moved to the
   * sandbox's places, then it is told the folder and the variables. Null when the pool is empty or
   * the executor refuses (the caller starts one cold).
   */
  private async claimPooled(id: string, root: string, env: Record<string, string>): Promise<Executor | null> {
    const pooled = this.pool.shift();
    if (!pooled) return null;
    this.refillSoon();
    try {
      await rename(pooled.root, root);
      await chmod(root, 0o700);
      await rename(pooled.socket, this.socketOf(id));
      await rename(this.logOf(pooled.name), this.logOf(id)).catch(() => undefined);
      Object.assign(pooled, { socket: this.socketOf(id) });
      await new ExecutorClient(handleOf(pooled)).init(root, env, { timeoutMs: PROBE_TIMEOUT_MS });
    } catch (err) {
      this.logger.warn(`warm pool: executor ${pooled.pid} could not take sandbox ${id}: ${(err as Error).message}`);
      await this.terminate(pooled);
      return null;
    }
    Object.assign(pooled, { id, root, name: id });
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
    await rm(this.logOf(executor.name), { force: true });
  }

  async provision(spec: SandboxSpec): Promise<SandboxHandle> {
    const root = this.rootOf(spec.id);
    const env = checkEnv(spec.env ?? {});
    const network = checkNetwork(spec.network ?? this.network);
    return this.serialize(spec.id, async () => {
      this.checkOpen();
      // A retried provision gets the executor the first one started.
      const current = this.executors.get(spec.id);
      if (current && (await answers(current))) return handleOf(current);
      if (current) await this.terminate(current);
      await mkdir(this.sandboxesDir, { recursive: true, mode: 0o700 });
      await writeFile(this.specFile(spec.id), JSON.stringify({ env, network }), { mode: 0o600 });
      // A new sandbox takes a pooled executor with its folder (only one with the pool's network); an existing folder keeps its files.
      const warm = existsSync(root) || network !== this.network ? null : await this.claimPooled(spec.id, root, env);
      if (warm) return handleOf(warm);
      await mkdir(root, { recursive: true, mode: 0o700 });
      await chmod(root, 0o700);
      return handleOf(await this.start(spec.id, newToken(), root, { env, network }));
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
      return handleOf(await this.start(handle.id, handle.token, root, await this.readSpec(handle.id)));
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
      await rm(this.logOf(handle.id), { force: true });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.diskTimer) clearInterval(this.diskTimer);
    // Operations under way may still start an executor: let them finish, then stop everything.
    await Promise.allSettled([...this.locks.values()]);
    await Promise.all([...this.executors.values()].map((executor) => this.terminate(executor)));
    await Promise.all(this.pool.splice(0).map((executor) => this.discard(executor)));
  }

  private async stopExecutor(handle: SandboxHandle, root: string): Promise<void> {
    const current = this.executors.get(handle.id);
    if (current) await this.terminate(current);
    else if ((await inspectEarlier(handle)) !== 'gone') await this.terminate(this.adopt(handle, root));
    else await this.cgroups.remove(handle.id);
    this.crashed.delete(handle.id);
  }

  private async start(id: string, token: string, root: string, spec: { env: Record<string, string>; network: SandboxNetwork }): Promise<Executor> {
    const executor = await this.spawn({
      id,
      name: id,
      token,
      root,
      network: spec.network,
      vars: {
        ...spec.env,
        BERTH_SANDBOX_ROOT: root,
        // Which of its variables the executor hands on to the sandbox's shells.
        BERTH_SANDBOX_ENV_NAMES: Object.keys(spec.env).join(','),
      },
    });
    this.executors.set(id, executor);
    this.crashed.delete(id);
    return executor;
  }

  /**
   * Starts an executor working in `root` with `vars` (and nothing of this process's environment but
   * PATH and LANG), serving on a unix socket made here and handed over as fd 3.
   */
  private async spawn(spec: { id: string; name: string; token: string; root: string; network: SandboxNetwork; vars: Record<string, string> }): Promise<Executor> {
    const { id, name, token, root } = spec;
    const logPath = this.logOf(name);
    await mkdir(dirname(logPath), { recursive: true, mode: 0o700 });
    const socket = this.socketOf(name);
    const listener = await listenOn(socket);
    const log = await open(logPath, 'a', 0o600);
    const logStart = (await log.stat()).size;
    const env: Record<string, string> = {};
    for (const name of INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name]!;
    // The driver's own variables come last: a spec cannot replace the token or the socket.
    Object.assign(env, spec.vars, { BERTH_SANDBOX_TOKEN: token, BERTH_EXECUTOR_LISTEN_FD: '3' });
    const label = id ? `executor of sandbox ${id}` : 'pooled executor';
    let child: ChildProcess | undefined;
    let jail: { init: number; egress?: number } | undefined;
    const opened: FileHandle[] = [];
    try {
      const listenFd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
      if (this.isolation === 'none') {
        // stderr goes straight to the file (not through us), so it keeps working if this process dies first.
        child = spawn(process.execPath, [this.executorEntry], { cwd: root, env, stdio: ['ignore', 'pipe', log.fd, listenFd] });
      } else {
        const jailed = await this.jailed(spec, env, [log.fd, listenFd], opened);
        child = jailed.child;
        child.on('error', () => undefined);
        jail = await this.enterJail(child, name, spec.network, log.fd, label);
      }
    } catch (err) {
      child?.kill('SIGKILL');
      throw err instanceof SandboxError ? err : new SandboxError(`${label} did not start: ${(err as Error).message}`);
    } finally {
      for (const file of opened) await file.close();
      await log.close();
      // The child holds the socket now; our copy goes (libuv unlinks the name it bound, which listenOn has moved away).
      listener.close();
    }
    child.on('error', (err) => this.logger.warn(`${label}: ${err.message}`));
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    let pid = child.pid!;
    try {
      const ready = await readReadyLine(child, this.startTimeoutMs);
      // Anything after the ready line is the executor's business: keep it with its log.
      const out = createWriteStream(logPath, { flags: 'a' }).on('error', () => undefined);
      out.write(ready.rest);
      child.stdout!.pipe(out);
      if (jail) pid = childrenOf(jail.init)[0] ?? jail.init;
    } catch (err) {
      child.kill('SIGKILL');
      if (jail) killQuietly(jail.init, 'SIGKILL');
      await exited;
      await this.cgroups.remove(name);
      const stderr = await readTail(logPath, logStart);
      throw new SandboxError(`${label} did not start: ${(err as Error).message}${stderr ? `; stderr: ${stderr}` : ''}`);
    }
    const executor: Executor = { id, pid, init: jail?.init, egress: jail?.egress, socket, token, root, name, child, stopping: false };
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
      // In the sandbox's queue of operations: a restart under way must not lose its new groups to this removal.
      void this.serialize(executor.id, () => this.cgroups.remove(executor.name));
      this.logger.warn(`executor of sandbox ${executor.id} exited on its own (${signal ?? `code ${code}`}); see ${logPath}`);
    });
    return executor;
  }

  /**
   * bwrap (under prlimit) as the sandbox's uid, told to wait on its block fd once its namespaces
   * exist. Inherited fds: 3 the socket, 4 info (bwrap → us), 5 block (us → bwrap), then the root
   * folder, the code and the generated /etc files, opened here (bwrap as the sandbox's uid could not
   * walk to them: the data dir is this process's).
   */
  private async jailed(
    spec: { name: string; root: string; network: SandboxNetwork },
    env: Record<string, string>,
    [logFd, listenFd]: [number, number],
    opened: FileHandle[],
  ): Promise<{ child: ChildProcess }> {
    const uid = sandboxUid(spec.name, this.uidBase);
    if (uid !== null) {
      await this.letUidsThrough();
      await chownTree(spec.root, uid);
    }
    const ids = uid === null ? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } : { uid, gid: uid };
    const extra: number[] = [];
    const fdOf = async (path: string): Promise<number> => {
      const file = await open(path, 'r');
      opened.push(file);
      extra.push(file.fd);
      return 6 + extra.length - 1;
    };
    const rootFd = await fdOf(spec.root);
    const code = projectRoot();
    const codeFds: Array<[number, string]> = [];
    for (const path of codePaths(code, this.executorEntry)) codeFds.push([await fdOf(path), path]);
    const dataFds: Array<[number, string]> = [];
    const scratch = join(this.sandboxesDir, SOCKETS_DIR, `etc-${newToken().slice(0, 12)}`);
    for (const [path, text] of Object.entries(etcFiles(ids.uid, ids.gid, spec.root, spec.network))) {
      // Written, opened, unlinked: bwrap copies from the open file into the jail.
      await writeFile(scratch, text, { mode: 0o600 });
      dataFds.push([await fdOf(scratch), path]);
      await unlink(scratch);
    }
    const args = bwrapArgs({ root: spec.root, rootFd, codeFds, dataFds, infoFd: 4, blockFd: 5, network: spec.network, cwd: spec.root });
    const command = [...prlimitArgs(this.limits, uid !== null), BWRAP, ...args, '--', process.execPath, this.executorEntry];
    const child = spawn(command[0], command.slice(1), {
      cwd: '/',
      env,
      stdio: ['ignore', 'pipe', logFd, listenFd, 'pipe', 'pipe', ...extra],
      ...(uid === null ? {} : { uid, gid: uid }),
    });
    return { child };
  }

  /**
   * bwrap, as a sandbox's uid, resolves the paths it binds: the folders above them must let others
   * through (x, not r). The sandboxes folder and the data dir are made so (their contents stay
   * 0700/0600: no code runs as a sandbox uid outside its jail but bwrap itself); the others are checked.
   */
  private async letUidsThrough(): Promise<void> {
    await chmod(this.sandboxesDir, 0o711);
    const dataDir = dirname(this.sandboxesDir);
    const mode = (await lstat(dataDir)).mode & 0o7777;
    if (!(mode & 0o001)) await chmod(dataDir, mode | 0o001);
    for (const path of [dirname(dataDir), projectRoot()]) {
      for (let dir = path; ; dir = dirname(dir)) {
        if (!((await lstat(dir)).mode & 0o001)) throw new SandboxError(`${dir} does not let sandbox uids through (chmod o+x it): bwrap cannot reach ${path}`);
        if (dir === dirname(dir)) break;
      }
    }
  }

  /** Reads bwrap's info (its init's pid), puts the init in the sandbox's cgroups, gives it egress if asked, then lets it go on. */
  private async enterJail(child: ChildProcess, name: string, network: SandboxNetwork, logFd: number, label: string): Promise<{ init: number; egress?: number }> {
    const [infoPipe, blockPipe] = [(child.stdio as unknown as Readable[])[4], (child.stdio as unknown as Writable[])[5]];
    // bwrap closes both once used: a reset is no error of ours.
    infoPipe.on('error', () => undefined);
    blockPipe.on('error', () => undefined);
    const info = await readInfo(infoPipe, this.startTimeoutMs);
    infoPipe.destroy();
    const init = info['child-pid'];
    if (!Number.isInteger(init)) throw new SandboxError(`${label}: bwrap gave no child pid`);
    await this.cgroups.enter(name, init, this.limits);
    const egress = network === 'egress' ? await startEgress(init, logFd) : undefined;
    blockPipe.end('go');
    return { init, egress };
  }

  /** Stops sandboxes whose folder has grown over the disk limit (RLIMIT_FSIZE bounds one file, not their number). */
  private async checkDisks(): Promise<void> {
    for (const executor of [...this.executors.values()]) {
      const used = await diskUsage(executor.root);
      if (used === null || used <= this.limits.diskBytes || executor.stopping) continue;
      this.logger.warn(`sandbox ${executor.id} uses ${used} bytes of disk, over its limit of ${this.limits.diskBytes}: stopped`);
      await this.serialize(executor.id, async () => {
        if (this.executors.get(executor.id) !== executor) return;
        await this.terminate(executor);
        this.crashed.add(executor.id);
      });
    }
  }

  /** Takes over an executor started by an earlier process, from its handle. */
  private adopt(handle: SandboxHandle, root: string): Executor {
    const executor = fromHandle(handle, root);
    this.executors.set(handle.id, executor);
    return executor;
  }

  /** SIGTERM, up to STOP_GRACE_MS to exit, then SIGKILL to it and to its jail's init (which ends every process of the sandbox). */
  private async terminate(executor: Executor): Promise<void> {
    executor.stopping = true;
    killQuietly(executor.pid, 'SIGTERM');
    if (!(await waitForExit(executor, STOP_GRACE_MS))) {
      killQuietly(executor.pid, 'SIGKILL');
      if (executor.init) killQuietly(executor.init, 'SIGKILL');
      if (!(await waitForExit(executor, STOP_GRACE_MS))) this.logger.warn(`executor ${executor.pid} of sandbox ${executor.id} survived SIGKILL`);
    }
    // Whatever the executor left behind in its namespace goes with the init.
    if (executor.init && pidAlive(executor.init)) killQuietly(executor.init, 'SIGKILL');
    if (executor.egress) killQuietly(executor.egress, 'SIGKILL');
    await this.cgroups.remove(executor.name);
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

  private socketOf(name: string): string {
    return join(this.sandboxesDir, SOCKETS_DIR, `${name}.sock`);
  }

  private logOf(name: string): string {
    return join(this.sandboxesDir, LOGS_DIR, `${name}.log`);
  }

  /**
   * Checks a handle (it may come from the database) before acting on it, and returns the sandbox's
   * folder as this driver places it — never the handle's `root`, which `destroy` would delete.
   */
  private check(handle: SandboxHandle): string {
    if (handle?.driver !== 'local') throw new SandboxError(`not a local sandbox handle: ${JSON.stringify(handle?.driver)}`);
    const root = this.rootOf(handle.id);
    // kill(0 or -1) would signal whole process groups, and a handle must never name us.
    for (const pid of [handle.pid, ...(handle.init === undefined ? [] : [handle.init]), ...(handle.egress === undefined ? [] : [handle.egress])]) {
      if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || pid === process.ppid) {
        throw new SandboxError(`sandbox ${handle.id}: invalid pid ${JSON.stringify(pid)}`);
      }
    }
    // Only this sandbox's socket in this driver's socket folder: a handle must not turn the driver into a client of anything else.
    if (typeof handle.url !== 'string' || executorSocket(handle.url) !== this.socketOf(handle.id)) {
      throw new SandboxError(`sandbox ${handle.id}: invalid url ${JSON.stringify(handle.url)}`);
    }
    if (typeof handle.token !== 'string' || !handle.token) throw new SandboxError(`sandbox ${handle.id}: missing token`);
    return root;
  }

  /** The spec's variables live beside the folder, not in it: the sandbox must not rewrite its own restart environment. */
  private specFile(id: string): string {
    return join(this.sandboxesDir, `${id}.env.json`);
  }

  private async readSpec(id: string): Promise<{ env: Record<string, string>; network: SandboxNetwork }> {
    try {
      const stored = JSON.parse(await readFile(this.specFile(id), 'utf8'));
      return { env: checkEnv(stored.env ?? {}), network: checkNetwork(stored.network ?? this.network) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { env: {}, network: this.network };
      throw err;
    }
  }
}

/** Probing bwrap costs a process: once per uid base and process. */
const probes = new Map<number, string | null>();
function bubblewrapProblem(uidBase: number): string | null {
  if (!probes.has(uidBase)) probes.set(uidBase, probeBubblewrap(uidBase));
  return probes.get(uidBase)!;
}

/** What of the project a jail sees: dist/, node_modules/, package.json and each lib's index.js and package.json (node_modules/@berth links there). */
function codePaths(code: string, entry: string): string[] {
  const paths = CODE_PATHS.map((path) => join(code, path)).filter((path) => existsSync(path));
  // An executor entry of its own (tests give one) is bound too.
  if (!paths.some((path) => entry.startsWith(`${path}/`))) paths.push(entry);
  const libs = join(code, 'libs');
  for (const lib of existsSync(libs) ? readdirSync(libs) : []) {
    for (const file of ['index.js', 'package.json']) if (existsSync(join(libs, lib, file))) paths.push(join(libs, lib, file));
  }
  return paths;
}

/**
 * A listening unix socket at `path`, bound under a temporary name and renamed into place: libuv
 * unlinks the name it bound when our copy is closed, which must not take the child's socket's name with it.
 */
async function listenOn(path: string): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await chmod(dirname(path), 0o700);
  // Short: a unix socket's path has at most 107 bytes.
  const temporary = join(dirname(path), `t-${randomBytes(6).toString('hex')}`);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(temporary, () => resolve());
  });
  await rename(temporary, path);
  return server;
}

/** bwrap's `--info-fd` JSON (`{"child-pid": N, …}`). */
function readInfo(stream: Readable, timeoutMs: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => finish(new Error(`bwrap gave no info within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, info?: Record<string, number>) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      if (err) reject(err);
      else resolve(info!);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      try {
        finish(null, JSON.parse(text));
      } catch {
        /* not complete yet */
      }
    };
    const onEnd = () => finish(new Error(`bwrap ended before its info: ${JSON.stringify(text)}`));
    stream.on('data', onData);
    stream.once('end', onEnd);
  });
}

/** Gives the sandbox's folder to its uid: at its first isolated start, or after it ran unisolated (never following links). */
async function chownTree(root: string, uid: number): Promise<void> {
  const top = await lstat(root);
  if (top.uid === uid && top.gid === uid) return;
  const walk = async (path: string): Promise<void> => {
    await lchown(path, uid, uid);
    const stat = await lstat(path);
    if (!stat.isDirectory()) return;
    for (const entry of await readdir(path)) await walk(join(path, entry));
  };
  await walk(root);
  await chown(root, uid, uid);
}

/** Bytes a folder takes on disk (du, which does not follow links), or null. */
function diskUsage(root: string): Promise<number | null> {
  return new Promise((resolve) => {
    execFile('du', ['-s', '-x', '-B1', root], { timeout: 60_000 }, (err, stdout) => {
      const bytes = Number(stdout.split('\t')[0]);
      resolve(Number.isFinite(bytes) && stdout ? bytes : err ? null : null);
    });
  });
}

function handleOf(executor: Executor): LocalSandboxHandle {
  return {
    driver: 'local',
    id: executor.id,
    url: `unix:${executor.socket}`,
    token: executor.token,
    root: executor.root,
    pid: executor.pid,
    ...(executor.init ? { init: executor.init } : {}),
    ...(executor.egress ? { egress: executor.egress } : {}),
  };
}

function fromHandle(handle: SandboxHandle, root: string): Executor {
  return {
    id: handle.id,
    pid: handle.pid,
    init: handle.init,
    egress: handle.egress,
    socket: executorSocket(handle.url) ?? '',
    token: handle.token,
    root,
    name: handle.id,
    stopping: false,
  };
}

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

function checkNetwork(network: unknown): SandboxNetwork {
  if (network !== 'none' && network !== 'egress') throw new SandboxError(`sandbox network must be none or egress, got ${JSON.stringify(network)}`);
  return network;
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
  const client = new ExecutorClient({ url: `unix:${executor.socket}`, token: executor.token });
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

function killQuietly(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
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

/** Reads the executor's first stdout line, `{"executor":"ready"}`; `rest` is what followed it. */
function readReadyLine(child: ChildProcess, timeoutMs: number): Promise<{ rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const finish = (err: Error | null, ready?: { rest: Buffer }): void => {
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
      if (!isReady(line)) finish(new Error(`unexpected first line ${JSON.stringify(line.slice(0, 200))}`));
      else finish(null, { rest: buffered.subarray(end + 1) });
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null): void => finish(new Error(`exited (${sig ?? `code ${code}`}) before it was ready`));
    const onError = (err: Error): void => finish(err);
    const timer = setTimeout(() => finish(new Error(`no ready line within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

function isReady(line: string): boolean {
  try {
    return (JSON.parse(line) as { executor?: unknown }).executor === 'ready';
  } catch {
    return false;
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
