import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { chmod, chown, FileHandle, lchown, lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Logger } from '@nestjs/common';
import { DEFAULT_SANDBOX_LIMITS, projectRoot } from '@berth/config';
import type { SandboxIsolationMode } from '@berth/config';
import { sandboxProvisionDuration } from '@berth/metrics';
import { ExecutorClient, executorSocket } from './executor-client';
import { BWRAP, bwrapArgs, childrenOf, etcFiles, killQuietly, pidAlive, prlimitArgs, probeBubblewrap, SandboxCgroups, SandboxLimits, SandboxNetwork, sandboxUid, startEgress, VIRTUAL_WORKSPACE } from './isolation';
import { DriverResource, LocalSandboxHandle, SandboxDriver, SandboxError, SandboxHandle, SandboxSpec, SandboxStatus, sandboxWorkingDir } from './sandbox-driver';

export interface LocalSandboxDriverOptions {
  /** Sandboxes live in `<dataDir>/sandboxes/<id>/`. */
  dataDir: string;
  /** The executor's compiled entry point; default `<projectRoot>/dist/apps/executor/src/main.js`. */
  executorEntry?: string;
  /** How long an executor may take to print its ready line. */
  startTimeoutMs?: number;
  /** Executors kept started and waiting for a sandbox, so that a provision need not start one (default 0). */
  warmPoolSize?: number;
  /**
   * When the warm pool first fills: `start` (default here) as soon as `warm()` is called, `demand`
   * after the first `reserveId` (a process that never makes a sandbox keeps no executor).
   */
  warmPoolFill?: WarmPoolFill;
  /** How long an id given out by `reserveId` waits for its provision before its executor is discarded (default 15 s). */
  reservationMs?: number;
  /** `bwrap` (default): each executor in its own namespaces as its own uid, with limits; `none`: a plain child process. */
  isolation?: SandboxIsolationMode;
  /** A sandbox's network when its spec names none (default `none`: its own loopback only). */
  network?: SandboxNetwork;
  /** First sandbox uid when this process runs as root (default 100000). */
  uidBase?: number;
  /** What one sandbox may use (defaults: DEFAULT_SANDBOX_LIMITS). */
  limits?: Partial<SandboxLimits>;
  /** How often folders are measured against `limits.diskBytes` (default 30 s). */
  diskCheckIntervalMs?: number;
}

export type WarmPoolFill = 'start' | 'demand';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;
const EXIT_POLL_MS = 50;
/** The parent's variables an executor inherits; nothing else (no database, Redis or LLM credentials). */
const INHERITED_ENV = ['PATH', 'LANG'];
/**
 * `<dataDir>/sandboxes/.pool/<id>`: one marker per warm-pool executor, naming the process that
 * started it. The folder `<id>` stays the pool's while its marker exists; whoever unlinks the marker
 * (the claim, another process provisioning that id, the sweep at a start) owns the folder.
 */
const POOL_DIR = '.pool';
/**
 * `<dataDir>/sandboxes/.sockets/`: the executors' unix sockets and `.logs/` their logs, 0700 and
 * this process's: no sandbox sees them, so none can replace its socket (with a link to a host
 * socket the gateway would then talk to) or its log (with a link to a host file we would append to).
 */
const SOCKETS_DIR = '.sockets';
const LOGS_DIR = '.logs';
const POOL_REFILL_DELAY_MS = 1000;
/** A reserved pooled executor not provisioned within this long (its row was not made, or another process provisions it) is discarded. */
const DEFAULT_RESERVATION_MS = 15_000;
/** A pool marker still empty after this long was left by a process that died while writing it. */
const MARKER_WRITE_MS = 60_000;
const DEFAULT_DISK_CHECK_MS = 30_000;
const MAX_SOCKET_PATH = 107;
/** The executor's code a jail sees read-only, relative to the project root (not the root itself: the data dir defaults to ./workspace in it). */
const CODE_PATHS = ['dist', 'node_modules', 'package.json'];

/** An executor this driver runs: its own child, or one adopted from a handle of an earlier process. */
interface Executor {
  /** its sandbox's id (a pooled executor's is chosen before any sandbox has it); its folder, socket, log, uid and cgroups are named after it */
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
  child?: ChildProcess;
  /** Set when the driver ends it, so that its exit is not taken for a crash. */
  stopping: boolean;
}

/** An executor of the warm pool, dormant in its future sandbox's folder; `reservation` once `reserveId` handed its id out. */
interface Pooled {
  executor: Executor;
  reservation: NodeJS.Timeout | null;
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
  private readonly reservationMs: number;
  /** Dormant executors (BERTH_EXECUTOR_DORMANT) started for a sandbox id chosen in advance, and how many are starting. */
  private readonly pool = new Map<string, Pooled>();
  private warming = 0;
  /** Whether the pool fills yet (with `warmPoolFill: 'demand'`, from the first `reserveId` on). */
  private poolWanted: boolean;
  /** The sweep of pool folders left by processes that died (once, before the pool first fills). */
  private swept: Promise<void> | null = null;
  /** What this process writes in its pool markers: its pid and start time (a reused pid is not it). */
  private readonly owner = processIdentity(process.pid);
  readonly isolation: SandboxIsolationMode;
  private readonly network: SandboxNetwork;
  private readonly uidBase: number;
  private readonly limits: SandboxLimits;
  private readonly cgroups: SandboxCgroups;
  private readonly diskTimer: NodeJS.Timeout | null;
  /** Where the executors' sockets are made (see `socketDirOf`). */
  readonly socketDir: string;
  /** What of the project every jail binds (found at the first start). */
  private codePaths: string[] | null = null;
  private uidsLetThrough = false;

  constructor(options: LocalSandboxDriverOptions) {
    super();
    this.sandboxesDir = join(options.dataDir, 'sandboxes');
    this.executorEntry = options.executorEntry ?? join(projectRoot(), 'dist/apps/executor/src/main.js');
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.isolation = options.isolation ?? 'bwrap';
    this.network = options.network ?? 'none';
    this.uidBase = options.uidBase ?? 100_000;
    this.limits = { ...DEFAULT_SANDBOX_LIMITS, ...options.limits };
    if (this.isolation === 'bwrap') {
      const unusable = bubblewrapProblem(this.uidBase);
      if (unusable) throw new SandboxError(`sandboxes cannot be isolated: ${unusable}. Install bubblewrap (and allow user namespaces), or set BERTH_SANDBOX_ISOLATION=none to run them unisolated`);
      this.cgroups = SandboxCgroups.detect();
    } else {
      this.logger.warn('BERTH_SANDBOX_ISOLATION=none: SANDBOXES ARE NOT ISOLATED. Code in a sandbox runs as this server\'s user and can read its files, environment and every other sandbox. Development only.');
      this.cgroups = SandboxCgroups.none();
    }
    mkdirSync(this.sandboxesDir, { recursive: true, mode: 0o700 });
    this.socketDir = socketDirOf(this.sandboxesDir);
    checkPrivateDirSync(this.socketDir);
    this.warmPoolSize = options.warmPoolSize ?? 0;
    this.poolWanted = options.warmPoolFill !== 'demand';
    this.reservationMs = options.reservationMs ?? DEFAULT_RESERVATION_MS;
    const diskEvery = options.diskCheckIntervalMs ?? DEFAULT_DISK_CHECK_MS;
    this.diskTimer = this.limits.diskBytes > 0 && diskEvery > 0 ? setInterval(() => void this.checkDisks().catch((err: Error) => this.logger.warn(`disk check failed: ${err.message}`)), diskEvery).unref() : null;
  }

  /** Executors started and waiting for a sandbox now (not counting those reserved). */
  get warmExecutors(): number {
    return [...this.pool.values()].filter((pooled) => !pooled.reservation).length;
  }

  /**
   * Tops the warm pool up to its size, in the background. Each pooled executor is started for a
   * fresh id — in its final folder, as its final uid, on its final socket, in its final cgroups,
   * jailed with the default network — which `reserveId` hands to the next new sandbox. Before the
   * first demand (`warmPoolFill: 'demand'`) it only sweeps what dead processes left.
   */
  override warm(): void {
    this.swept ??= this.sweepPool().catch((err: Error) => this.logger.warn(`warm pool: sweep: ${err.message}`));
    if (!this.poolWanted) return;
    while (!this.closed && this.pool.size + this.warming < this.warmPoolSize) {
      this.warming++;
      const id = randomUUID();
      this.swept
        .then(() => this.startPooled(id))
        .then(
          (executor) => {
            if (this.closed) void this.discard(executor);
            else this.pool.set(id, { executor, reservation: null });
          },
          (err: Error) => {
            this.logger.warn(`warm pool: ${err.message}`);
            void this.releaseFolder(id);
          },
        )
        .finally(() => this.warming--);
    }
  }

  /** The id of a waiting pooled executor with this network, kept for the sandbox row about to be made; null if none. */
  override reserveId(network?: SandboxNetwork): string | null {
    if (!this.poolWanted) {
      // The first sandbox wanted starts cold; the pool fills for the next ones.
      this.poolWanted = true;
      this.warm();
    }
    if ((network ?? this.network) !== this.network) return null;
    for (const [id, pooled] of this.pool) {
      if (pooled.reservation) continue;
      pooled.reservation = setTimeout(() => void this.serialize(id, () => this.dropPooled(id, 'was not provisioned in time')), this.reservationMs).unref();
      this.refillSoon();
      return id;
    }
    return null;
  }

  private async startPooled(id: string): Promise<Executor> {
    const root = this.rootOf(id);
    await mkdir(join(this.sandboxesDir, POOL_DIR), { recursive: true, mode: 0o700 });
    // The marker first: a folder without one would be taken for a sandbox's.
    await writeFile(this.markerOf(id), this.owner, { flag: 'wx', mode: 0o600 });
    await mkdir(root, { mode: 0o700 });
    const executor = await this.spawn({ id, token: newToken(), root, network: this.network, dormant: true, vars: { BERTH_EXECUTOR_DORMANT: '1', BERTH_SANDBOX_ROOT: root } });
    // An executor's first request costs ~13 ms more than later ones (Node compiles the paths it first runs): paid here, not by the claim.
    await answers(executor);
    return executor;
  }

  /** Takes the pooled executor of `id` out of the pool and ends it (its folder goes too if still the pool's). */
  private async dropPooled(id: string, why: string): Promise<void> {
    const pooled = this.pool.get(id);
    if (!pooled) return;
    this.pool.delete(id);
    if (pooled.reservation) clearTimeout(pooled.reservation);
    this.logger.debug(`warm pool: executor of ${id} ${why}`);
    await this.discard(pooled.executor);
    this.refillSoon();
  }

  /**
   * Claims the folder of a pool id: true if it was the pool's (its marker is unlinked here, once,
   * whichever process gets there first), false if it had no marker.
   */
  private async takeMarker(id: string): Promise<boolean> {
    try {
      await unlink(this.markerOf(id));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Removes a pool id's folder, log and socket — only if it is still the pool's (its marker is taken here). */
  private async releaseFolder(id: string): Promise<boolean> {
    if (!(await this.takeMarker(id))) return false;
    await this.removePoolFiles(id);
    return true;
  }

  /**
   * A pool id's folder, log and socket, once its marker is taken. The folder is first moved aside
   * (a process provisioning the id from now on makes a fresh one, which must not be removed under
   * it), and removed once `executorGone` (its executor may still write in it); no spec file: only a
   * provision writes one.
   */
  private async removePoolFiles(id: string, executorGone: Promise<unknown> = Promise.resolve()): Promise<void> {
    const aside = join(this.sandboxesDir, POOL_DIR, `${id}.removed`);
    await rename(this.rootOf(id), aside).catch(() => undefined);
    await Promise.all([rm(this.logOf(id), { force: true }), rm(this.socketOf(id), { force: true })]);
    await executorGone;
    // The sweep at the next start removes what could not be removed now.
    await rm(aside, { recursive: true, force: true }).catch((err: Error) => this.logger.warn(`warm pool: ${err.message}`));
  }

  /** A destroyed sandbox's files. */
  private async removeFiles(id: string): Promise<void> {
    await rm(this.rootOf(id), { recursive: true, force: true });
    await rm(this.specFile(id), { force: true });
    await rm(this.logOf(id), { force: true });
    await rm(this.socketOf(id), { force: true });
  }

  /**
   * Pool ids whose process died (it was killed: a pooled executor ends with its driver, see
   * `spawn`) left a marker, a folder, maybe cgroups: removed. Live processes' markers are theirs.
   */
  private async sweepPool(): Promise<void> {
    const dir = join(this.sandboxesDir, POOL_DIR);
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, entry);
      // Not a marker: a staging folder of an earlier version's pool.
      if (!UUID.test(entry)) {
        await rm(path, { recursive: true, force: true });
        continue;
      }
      if (await markerOwnerAlive(path)) continue;
      if (await this.releaseFolder(entry)) await this.cgroups.remove(entry);
    }
  }

  /**
   * A pooled executor made this sandbox's: it is told the variables (its folder, uid, socket and
   * cgroups are already the sandbox's). Null when it refuses (the caller starts one cold).
   */
  private async claimPooled(pooled: Executor, env: Record<string, string>): Promise<Executor | null> {
    try {
      await new ExecutorClient(handleOf(pooled)).init(pooled.root, env, { timeoutMs: PROBE_TIMEOUT_MS });
    } catch (err) {
      this.logger.warn(`warm pool: executor ${pooled.pid} could not take sandbox ${pooled.id}: ${(err as Error).message}`);
      await this.terminate(pooled);
      return null;
    }
    // A sandbox's executor outlives this process (a later one adopts it): no longer tied to our end of its stdin.
    pooled.child?.stdin?.destroy();
    this.executors.set(pooled.id, pooled);
    this.crashed.delete(pooled.id);
    return pooled;
  }

  /** A refill starts a Node process (~100 ms of CPU): a moment later, not while a new sandbox takes its first calls. */
  private refillSoon(): void {
    if (!this.closed) setTimeout(() => this.warm(), POOL_REFILL_DELAY_MS).unref();
  }

  /**
   * Ends a pooled executor that will serve no sandbox. Its folder, log and cgroups go only if they
   * are still the pool's: another process may have taken the id (and runs the sandbox in them).
   */
  private async discard(executor: Executor): Promise<void> {
    const owned = await this.takeMarker(executor.id);
    const gone = this.terminate(executor, { keepCgroups: !owned });
    await Promise.all([gone, owned ? this.removePoolFiles(executor.id, gone) : undefined]);
  }

  async provision(spec: SandboxSpec): Promise<LocalSandboxHandle> {
    const root = this.rootOf(spec.id);
    const env = checkEnv(spec.env ?? {});
    const network = checkNetwork(spec.network ?? this.network);
    const provisioned = sandboxProvisionDuration.startTimer({ driver: this.kind });
    return this.serialize(spec.id, async () => {
      this.checkOpen();
      // A retried provision gets the executor the first one started.
      const current = this.executors.get(spec.id);
      if (current && (await answers(current))) return handleOf(current);
      if (current) await this.terminate(current);
      await writeFile(this.specFile(spec.id), JSON.stringify({ env, network }), { mode: 0o600 });
      // The pooled executor started for this id (reserveId gave it out), if it waits here with the network asked for.
      const pooled = this.pool.get(spec.id);
      if (pooled) {
        this.pool.delete(spec.id);
        if (pooled.reservation) clearTimeout(pooled.reservation);
        this.refillSoon();
      }
      // The folder stops being the pool's here (in whichever process provisions the id first).
      const owned = await this.takeMarker(spec.id);
      if (pooled && owned && network === this.network) {
        const warm = await this.claimPooled(pooled.executor, env);
        if (warm) {
          provisioned({ pool: 'warm' });
          return handleOf(warm);
        }
      } else if (pooled) {
        await this.terminate(pooled.executor, { keepCgroups: !owned });
      }
      // Cold: a new folder, or an existing one (a restart, another process's pool folder) with its files.
      await mkdir(root, { recursive: true, mode: 0o700 });
      await chmod(root, 0o700);
      const started = await this.start(spec.id, newToken(), root, { env, network });
      provisioned({ pool: 'cold' });
      return handleOf(started);
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

  async ensureRunning(handle: SandboxHandle): Promise<LocalSandboxHandle> {
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

  override readonly copiesWorkspaces = true;

  /**
   * `cp -a` of the source's working dir into the target's folder (reflinked where the filesystem
   * can), then given to the target's uid. A path through a link the sandbox made is refused: the
   * copy runs as the server and must read nothing outside the source's folder.
   */
  override async copyWorkspace(fromId: string, toId: string, workingDir: string): Promise<void> {
    const [fromRoot, toRoot] = [this.rootOf(fromId), this.rootOf(toId)];
    const source = sandboxWorkingDir(fromRoot, workingDir);
    if (!existsSync(source)) return;
    if (!isWithin(realpathSync(source), realpathSync(fromRoot))) throw new SandboxError(`the working dir of sandbox ${fromId} leads out of its folder`);
    const target = sandboxWorkingDir(toRoot, workingDir);
    return this.serialize(toId, async () => {
      await mkdir(toRoot, { recursive: true, mode: 0o700 });
      await mkdir(target, { recursive: true, mode: 0o755 });
      if (!isWithin(realpathSync(target), realpathSync(toRoot))) throw new SandboxError(`the working dir of sandbox ${toId} leads out of its folder`);
      await new Promise<void>((resolve, reject) =>
        execFile('cp', ['-a', '--reflink=auto', '-T', '--', source, target], { timeout: 600_000 }, (err, _out, stderr) =>
          err ? reject(new SandboxError(`copying the workspace of sandbox ${fromId} failed: ${stderr.trim() || err.message}`)) : resolve(),
        ),
      );
      const uid = this.isolation === 'bwrap' ? sandboxUid(toId, this.uidBase) : null;
      if (uid === null) return;
      // The folders made above (the root itself is given at the sandbox's first start), then the copy (which kept the source's owner).
      for (let dir = dirname(target); dir !== toRoot && isWithin(dir, toRoot); dir = dirname(dir)) await lchown(dir, uid, uid);
      await chownTree(target, uid);
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
      await this.removeFiles(handle.id);
    });
  }

  /**
   * Every sandbox with something in the data dir: its folder, spec file, socket or log, or a process
   * started for its folder — found in /proc by the BERTH_SANDBOX_ROOT it was started with, so an
   * earlier process's executors count too. Warm-pool ids (with a pool marker) are left out.
   * `running`: a process of it lives; else `stopped` (an executor that died is no platform failure:
   * the next start brings it back).
   */
  async inventory(): Promise<DriverResource[]> {
    const ids = new Set<string>(this.executors.keys());
    const named = async (dir: string, suffix: string) => {
      for (const entry of await readdir(dir).catch(() => [] as string[])) {
        const id = entry.endsWith(suffix) ? entry.slice(0, entry.length - suffix.length) : '';
        if (UUID.test(id)) ids.add(id);
      }
    };
    await Promise.all([named(this.sandboxesDir, ''), named(this.sandboxesDir, '.env.json'), named(this.socketDir, '.sock'), named(join(this.sandboxesDir, LOGS_DIR), '.log')]);
    const processes = await this.processesBySandbox();
    for (const id of processes.keys()) ids.add(id);
    const pooled = new Set([...this.pool.keys(), ...(await readdir(join(this.sandboxesDir, POOL_DIR)).catch(() => [] as string[]))]);
    return [...ids]
      .filter((id) => !pooled.has(id))
      .map((sandboxId): DriverResource => ({ sandboxId, state: processes.has(sandboxId) ? 'running' : 'stopped' }));
  }

  /** Kills every process started for the sandbox's folder, then removes its folder, spec, socket, log and cgroups — never a warm-pool id's. */
  async removeOrphan(sandboxId: string): Promise<void> {
    this.rootOf(sandboxId);
    return this.serialize(sandboxId, async () => {
      if (this.pool.has(sandboxId) || existsSync(this.markerOf(sandboxId))) return;
      const current = this.executors.get(sandboxId);
      if (current) await this.terminate(current);
      const pids = (await this.processesBySandbox()).get(sandboxId) ?? [];
      for (const pid of pids) killQuietly(pid, 'SIGKILL');
      if (!(await pollUntil(() => !pids.some(pidAlive), STOP_GRACE_MS))) this.logger.warn(`orphan ${sandboxId}: processes ${pids.join(', ')} survived SIGKILL`);
      await this.cgroups.remove(sandboxId);
      await this.removeFiles(sandboxId);
      this.crashed.delete(sandboxId);
    });
  }

  /** Live processes started for a sandbox folder of this data dir (bwrap, its init, the executor), by sandbox id. */
  private async processesBySandbox(): Promise<Map<string, number[]>> {
    const prefix = `BERTH_SANDBOX_ROOT=${this.sandboxesDir}/`;
    const found = new Map<string, number[]>();
    for (const entry of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
      const id = environ.split('\0').find((v) => v.startsWith(prefix))?.slice(prefix.length);
      if (id && UUID.test(id)) found.set(id, [...(found.get(id) ?? []), Number(entry)]);
    }
    return found;
  }

  async close(keep: ReadonlySet<string> = new Set()): Promise<void> {
    this.closed = true;
    if (this.diskTimer) clearInterval(this.diskTimer);
    // Operations under way may still start an executor: let them finish, then stop the rest (a kept one is adopted as after a crash).
    await Promise.allSettled([...this.locks.values()]);
    await Promise.all([...this.executors.values()].filter((executor) => !keep.has(executor.id)).map((executor) => this.terminate(executor)));
    const pooled = [...this.pool.values()];
    this.pool.clear();
    await Promise.all(pooled.map(({ executor, reservation }) => (reservation && clearTimeout(reservation), this.discard(executor))));
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
   * PATH and LANG), serving on a unix socket made here and handed over as fd 3. A dormant (pooled)
   * one gets a pipe as stdin, whose end here closes when this process dies: it then exits (no later
   * process will ever adopt it), while a sandbox's executor outlives us to be adopted.
   */
  private async spawn(spec: { id: string; token: string; root: string; network: SandboxNetwork; dormant?: boolean; vars: Record<string, string> }): Promise<Executor> {
    const { id, token, root } = spec;
    const logPath = this.logOf(id);
    await mkdir(dirname(logPath), { recursive: true, mode: 0o700 });
    const socket = this.socketOf(id);
    await ensurePrivateDir(this.socketDir);
    const listener = await listenOn(socket);
    const log = await open(logPath, 'a', 0o600);
    const logStart = (await log.stat()).size;
    const env: Record<string, string> = {};
    for (const name of INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name]!;
    // The driver's own variables come last: a spec cannot replace the token or the socket.
    Object.assign(env, spec.vars, { BERTH_SANDBOX_TOKEN: token, BERTH_EXECUTOR_LISTEN_FD: '3' });
    const label = spec.dormant ? `pooled executor ${id}` : `executor of sandbox ${id}`;
    const stdin = spec.dormant ? 'pipe' : 'ignore';
    let child: ChildProcess | undefined;
    let jail: { init: number; egress?: number } | undefined;
    const opened: FileHandle[] = [];
    try {
      const listenFd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
      if (this.isolation === 'none') {
        // stderr goes straight to the file (not through us), so it keeps working if this process dies first.
        child = spawn(process.execPath, [this.executorEntry], { cwd: root, env, stdio: [stdin, 'pipe', log.fd, listenFd] });
      } else {
        // The cgroups are made while the jail is set up; the jail is moved in before it goes on.
        const cgroupsReady = this.cgroups.prepare(id, this.limits);
        cgroupsReady.catch(() => undefined);
        const jailed = await this.jailed(spec, env, [stdin, log.fd, listenFd], opened);
        child = jailed.child;
        child.on('error', () => undefined);
        jail = await this.enterJail(child, { name: id, cgroupsReady }, spec.network, log.fd, label);
      }
    } catch (err) {
      child?.kill('SIGKILL');
      await this.cgroups.remove(id);
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
      await this.cgroups.remove(id);
      const stderr = await readTail(logPath, logStart);
      throw new SandboxError(`${label} did not start: ${(err as Error).message}${stderr ? `; stderr: ${stderr}` : ''}`);
    }
    const executor: Executor = { id, pid, init: jail?.init, egress: jail?.egress, socket, token, root, child, stopping: false };
    child.once('exit', (code, signal) => {
      if (this.pool.get(id)?.executor === executor) {
        // A waiting executor died: the pool heals itself.
        void this.serialize(id, () => this.dropPooled(id, 'died while waiting'));
        return;
      }
      // Only a sandbox's current executor can crash (a pooled one being claimed or discarded is not yet, or no longer, one).
      if (this.executors.get(id) !== executor) return;
      this.executors.delete(id);
      if (executor.stopping) return;
      this.crashed.add(id);
      // In the sandbox's queue of operations, and only while no executor has taken the id again: a restart
      // queued before this exit was seen has made new groups, with its executor in them, by the time this runs.
      void this.serialize(id, async () => {
        if (!this.executors.has(id)) await this.cgroups.remove(id);
      });
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
    spec: { id: string; root: string; network: SandboxNetwork },
    env: Record<string, string>,
    [stdin, logFd, listenFd]: ['pipe' | 'ignore', number, number],
    opened: FileHandle[],
  ): Promise<{ child: ChildProcess }> {
    const uid = sandboxUid(spec.id, this.uidBase);
    // What the jail's /workspace link points to (bwrapArgs). mkdir never follows a link already there.
    await mkdir(join(spec.root, VIRTUAL_WORKSPACE), { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    if (uid !== null) {
      await this.letUidsThrough();
      await chownTree(spec.root, uid);
    }
    const ids = uid === null ? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } : { uid, gid: uid };
    this.codePaths ??= codePaths(projectRoot(), this.executorEntry);
    const etc = Object.entries(etcFiles(ids.uid, ids.gid, spec.root, spec.network));
    // Written, opened, unlinked: bwrap copies from the open file into the jail. All at once: a start waits on each step.
    const scratch = etc.map(() => join(this.socketDir, `etc-${newToken().slice(0, 12)}`));
    await Promise.all(etc.map(([, text], i) => writeFile(scratch[i], text, { mode: 0o600 })));
    const paths = [spec.root, ...this.codePaths, ...scratch];
    const files = await Promise.allSettled(paths.map((path) => open(path, 'r')));
    for (const file of files) if (file.status === 'fulfilled') opened.push(file.value);
    await Promise.all(scratch.map((path) => unlink(path).catch(() => undefined)));
    const failed = files.find((file) => file.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    // Inherited from fd 6 on, in the order of `paths`.
    const extra = (files as Array<PromiseFulfilledResult<FileHandle>>).map((file) => file.value.fd);
    const rootFd = 6;
    const codeFds = this.codePaths.map((path, i): [number, string] => [7 + i, path]);
    const dataFds = etc.map(([path], i): [number, string] => [7 + this.codePaths!.length + i, path]);
    const args = bwrapArgs({ root: spec.root, rootFd, codeFds, dataFds, infoFd: 4, blockFd: 5, network: spec.network, cwd: spec.root });
    const command = [...prlimitArgs(this.limits, uid !== null), BWRAP, ...args, '--', process.execPath, this.executorEntry];
    const child = spawn(command[0], command.slice(1), {
      cwd: '/',
      env,
      stdio: [stdin, 'pipe', logFd, listenFd, 'pipe', 'pipe', ...extra],
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
    // Checked once per driver: a start waits on every step.
    if (this.uidsLetThrough) return;
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
    this.uidsLetThrough = true;
  }

  /** Reads bwrap's info (its init's pid), puts the init in the sandbox's cgroups, gives it egress if asked, then lets it go on. */
  private async enterJail(
    child: ChildProcess,
    { name, cgroupsReady }: { name: string; cgroupsReady: Promise<void> },
    network: SandboxNetwork,
    logFd: number,
    label: string,
  ): Promise<{ init: number; egress?: number }> {
    const [infoPipe, blockPipe] = [(child.stdio as unknown as Readable[])[4], (child.stdio as unknown as Writable[])[5]];
    // bwrap closes both once used: a reset is no error of ours.
    infoPipe.on('error', () => undefined);
    blockPipe.on('error', () => undefined);
    const info = await readInfo(infoPipe, this.startTimeoutMs);
    infoPipe.destroy();
    const init = info['child-pid'];
    if (!Number.isInteger(init)) throw new SandboxError(`${label}: bwrap gave no child pid`);
    await cgroupsReady;
    await this.cgroups.attach(name, init);
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
  /** `keepCgroups`: the cgroups named after its id are another process's sandbox's now (killing their members would kill it). */
  private async terminate(executor: Executor, { keepCgroups = false } = {}): Promise<void> {
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
    if (!keepCgroups) await this.cgroups.remove(executor.id);
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

  private socketOf(id: string): string {
    return join(this.socketDir, `${id}.sock`);
  }

  private logOf(id: string): string {
    return join(this.sandboxesDir, LOGS_DIR, `${id}.log`);
  }

  private markerOf(id: string): string {
    return join(this.sandboxesDir, POOL_DIR, id);
  }

  owns(handle: SandboxHandle): boolean {
    try {
      this.check(handle);
      return true;
    } catch {
      return false;
    }
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

/**
 * The folder of the executors' sockets: `<dataDir>/sandboxes/.sockets` when a socket's path there
 * fits in the 107 bytes of a unix socket address; otherwise (a deep data dir) a private folder in
 * the temporary dir named after the data dir's real path, so that every process sharing the data
 * dir (gateway, workers) finds the same sockets — given the same TMPDIR.
 */
export function socketDirOf(sandboxesDir: string): string {
  const fits = (dir: string) => Buffer.byteLength(join(dir, `${randomUUID()}.sock`)) <= MAX_SOCKET_PATH;
  const inDataDir = join(sandboxesDir, SOCKETS_DIR);
  if (fits(inDataDir)) return inDataDir;
  const outside = join(tmpdir(), `berth-${createHash('sha256').update(realpathSync(dirname(sandboxesDir))).digest('hex').slice(0, 16)}`);
  if (!fits(outside)) throw new SandboxError(`neither ${inDataDir} nor ${outside} is short enough a folder for executor sockets (at most ${MAX_SOCKET_PATH - 42} bytes)`);
  return outside;
}

/**
 * Makes the sockets' folder if needed and checks it is ours alone: a real folder (not a link),
 * owned by this process's uid, mode 0700. A folder in /tmp another user made first is refused,
 * never used (it could hold their socket under a sandbox's name).
 */
function checkPrivateDirSync(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new SandboxError(`cannot make the executor socket folder ${dir}: ${(err as Error).message}`);
  }
  const stat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o777) !== 0o700) {
    throw new SandboxError(`the executor socket folder ${dir} is not a folder of this user with mode 0700: refusing it (remove it if it is stale)`);
  }
}

/** The check of checkPrivateDirSync again before each socket (the folder may have been removed meanwhile). */
async function ensurePrivateDir(dir: string): Promise<void> {
  const stat = await lstat(dir).catch(() => null);
  if (stat?.isDirectory() && stat.uid === (process.getuid?.() ?? stat.uid) && (stat.mode & 0o777) === 0o700) return;
  checkPrivateDirSync(dir);
}

/** `<pid> <start time>` of a process (the start time tells a reused pid apart); the pid alone without /proc. */
function processIdentity(pid: number): string {
  const stat = safeRead(`/proc/${pid}/stat`);
  // Field 22 (starttime), counted after the command's closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return `${pid} ${fields[19] ?? ''}`.trim();
}

/** Whether the process that wrote a pool marker still runs (a marker being written counts as alive for a while). */
async function markerOwnerAlive(marker: string): Promise<boolean> {
  const [content, info] = await Promise.all([readFile(marker, 'utf8').catch(() => ''), stat(marker).catch(() => null)]);
  if (!info) return true;
  const pid = Number(content.split(' ')[0]);
  if (!content) return Date.now() - info.mtimeMs < MARKER_WRITE_MS;
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return false;
  return processIdentity(pid) === content.trim();
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** What of the project a jail sees: dist/, node_modules/, package.json and each lib's package.json and entries (index.js, contracts' executor.js: node_modules/@berth links there). */
export function codePaths(code: string, entry: string): string[] {
  const paths = CODE_PATHS.map((path) => join(code, path)).filter((path) => existsSync(path));
  // An executor entry of its own (tests give one) is bound too.
  if (!paths.some((path) => entry.startsWith(`${path}/`))) paths.push(entry);
  const libs = join(code, 'libs');
  for (const lib of existsSync(libs) ? readdirSync(libs) : []) {
    const dir = join(libs, lib);
    if (!statSync(dir).isDirectory()) continue;
    for (const file of readdirSync(dir).sort()) if (file === 'package.json' || file.endsWith('.js')) paths.push(join(dir, file));
  }
  return paths;
}

/**
 * A listening unix socket at `path`, bound under a temporary name and renamed into place: libuv
 * unlinks the name it bound when our copy is closed, which must not take the child's socket's name with it.
 */
async function listenOn(path: string): Promise<Server> {
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

/** `path` is `root` or lies under it. */
function isWithin(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
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

/** A handle of this driver's kind (owns() checks the rest). */
function localHandle(handle: SandboxHandle): LocalSandboxHandle {
  if (handle.driver !== 'local') throw new SandboxError(`Sandbox ${handle.id} is not a local sandbox`);
  return handle;
}

function fromHandle(stored: SandboxHandle, root: string): Executor {
  const handle = localHandle(stored);
  return {
    id: handle.id,
    pid: handle.pid,
    init: handle.init,
    egress: handle.egress,
    socket: executorSocket(handle.url) ?? '',
    token: handle.token,
    root,
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
async function inspectEarlier(stored: SandboxHandle): Promise<'answering' | 'silent' | 'gone'> {
  const handle = localHandle(stored);
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
  return pollUntil(exited, timeoutMs);
}

/** Resolves true once `done()` holds (checked every EXIT_POLL_MS), false after `timeoutMs`. */
async function pollUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
    if (done()) return true;
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
