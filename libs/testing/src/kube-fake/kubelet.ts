/* eslint-disable @typescript-eslint/no-explicit-any */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { projectRoot } from '@berth/config';
import { BWRAP, childrenOf, codePaths, etcFiles, jailRootArgs, killQuietly } from '@berth/sandbox';

type KubeObject = Record<string, any> & { metadata: Record<string, any> };

/** What the kubelet reads and writes of the API server's store. */
export interface PodStore {
  get(resource: string, namespace: string, name: string): KubeObject | undefined;
  list(resource: string, namespace: string): KubeObject[];
  updatePod(namespace: string, name: string, uid: string, mutate: (pod: KubeObject) => void): KubeObject | null;
  removePod(namespace: string, name: string, uid: string): KubeObject | null;
}

export interface KubeletOptions {
  dataDir: string;
  /** The command every pod's container runs, whatever its image (default: the repo's built executor on this Node). */
  executorCommand: string[];
  /** `bubblewrap` (default): each container in a jail as the local driver makes them (read-only root, the pod's volumes, the host's network); `none`: only a mount namespace for the volumes. */
  isolation: 'bubblewrap' | 'none';
  /** First readiness probes until one succeeds, this often (default 100 ms; then the probe's periodSeconds). */
  probeIntervalMs: number;
  /** Restart back-off after the second quick crash, doubled each time up to 8 times it (default 200 ms; a kubelet's is 10 s). */
  backoffMs: number;
  /** A container that ran this long starts its back-off afresh (default 10 s; a kubelet's is 10 min). */
  backoffResetMs: number;
}

/** One live container process. */
export interface RunningPod {
  namespace: string;
  name: string;
  uid: string;
  pid: number;
  podIP: string;
  /** the environment it was started with */
  env: Record<string, string>;
  restartCount: number;
  /** host folder of each mounted volume, by volume name */
  volumes: Record<string, string>;
  labels: Record<string, string>;
}

interface PodRuntime {
  namespace: string;
  name: string;
  uid: string;
  podIP: string | null;
  scheduled: boolean;
  process: ChildProcess | null;
  /** host pid of the container's command (inside the jail) and of the jail's init */
  pid: number;
  init: number;
  env: Record<string, string>;
  volumes: Record<string, string>;
  restartCount: number;
  /** quick crashes since the back-off was last reset */
  crashes: number;
  startedAt: number;
  startedAtText: string;
  containerID: string;
  looping: boolean;
  terminating: boolean;
  ready: boolean;
  timers: Set<NodeJS.Timeout>;
  /** resolves once the current process's exit is in the pod's status */
  exitRecorded: Promise<void> | null;
  /** the sync under way, if any */
  syncing: Promise<void> | null;
}

/** What a container has whatever its pod says (a runtime sets them). */
const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The user an image runs as when the pod names none (the executor image's). */
const IMAGE_USER = 10001;
const NODE_NAME = 'berth-fake-node';

class ContainerConfigError extends Error {}

/**
 * The fake's one node: schedules pods (or refuses, when told to), gives each a pod IP 127.80.x.y on
 * the host's loopback, runs its (first) container's command as a local process — in a bubblewrap
 * jail, as the pod's user, with only the pod's environment and its volumes at their mount paths —
 * probes its readiness, restarts it by its restart policy with back-off (CrashLoopBackOff), and
 * reports all of it in the pod's status as a kubelet does. Pulls, scheduling and containers can be
 * made to fail.
 */
export class Kubelet {
  private readonly runtimes = new Map<string, PodRuntime>();
  /** Pod starts under way: close() waits for them, so no container starts after it. */
  private readonly syncing = new Set<Promise<void>>();
  private closed = false;
  private readonly failingPulls = new Set<string>();
  private noNode = false;
  private readonly usedIPs = new Set<string>();
  private code: string[] | null = null;

  constructor(
    private readonly store: PodStore,
    private readonly options: Partial<KubeletOptions> & { dataDir: string },
  ) {}

  private get command(): string[] {
    return this.options.executorCommand ?? [process.execPath, join(projectRoot(), 'dist/apps/executor/src/main.js')];
  }

  async prepare(): Promise<void> {
    for (const dir of [join(this.options.dataDir, 'volumes'), join(this.options.dataDir, 'pods')]) mkdirSync(dir, { recursive: true, mode: 0o711 });
    // Pods' users reach their folders through it (bwrap binds by path, as the pod's uid): the folders above must let them through.
    chmodSync(this.options.dataDir, lstatSync(this.options.dataDir).mode | 0o711);
    for (let dir = dirname(this.options.dataDir); dir !== dirname(dir); dir = dirname(dir)) {
      if (!(lstatSync(dir).mode & 0o001)) throw new Error(`${dir} does not let pods' users through (chmod o+x it): they could not reach the fake's data dir ${this.options.dataDir}`);
    }
  }

  failPulls(image: string, on: boolean): void {
    if (on) this.failingPulls.add(image);
    else {
      this.failingPulls.delete(image);
      this.syncAll();
    }
  }

  unschedulable(on: boolean): void {
    this.noNode = on;
    if (!on) this.syncAll();
  }

  async crashContainer({ namespace, name }: { namespace: string; name: string }): Promise<void> {
    const rt = [...this.runtimes.values()].find((r) => r.namespace === namespace && r.name === name);
    if (!rt?.process || !rt.exitRecorded) throw new Error(`pod ${namespace}/${name} runs no container`);
    const recorded = rt.exitRecorded;
    killQuietly(rt.pid, 'SIGKILL');
    await recorded;
  }

  async crashLoop(key: { namespace: string; name: string }): Promise<void> {
    const rt = [...this.runtimes.values()].find((r) => r.namespace === key.namespace && r.name === key.name);
    if (!rt) throw new Error(`no pod ${key.namespace}/${key.name}`);
    rt.looping = true;
    if (rt.process) await this.crashContainer(key);
  }

  running(): RunningPod[] {
    return [...this.runtimes.values()]
      .filter((rt) => rt.process && rt.pid)
      .map((rt) => ({
        namespace: rt.namespace,
        name: rt.name,
        uid: rt.uid,
        pid: rt.pid,
        podIP: rt.podIP!,
        env: { ...rt.env },
        restartCount: rt.restartCount,
        volumes: { ...rt.volumes },
        labels: { ...(this.store.get('pods', rt.namespace, rt.name)?.metadata.labels ?? {}) },
      }));
  }

  claimFolder(pvc: KubeObject): string {
    return join(this.options.dataDir, 'volumes', `pvc-${pvc.metadata.uid}`);
  }

  claimAdded(pvc: KubeObject): void {
    mkdirSync(this.claimFolder(pvc), { recursive: true, mode: 0o2775 });
  }

  claimRemoved(pvc: KubeObject): void {
    rmSync(this.claimFolder(pvc), { recursive: true, force: true });
  }

  claimInUse(namespace: string, claim: string): boolean {
    return this.store.list('pods', namespace).some((pod) => (pod.spec.volumes ?? []).some((v: any) => v.persistentVolumeClaim?.claimName === claim));
  }

  podAdded(pod: KubeObject): void {
    // A pod made while the fake closes is never started (it would outlive the fake).
    if (this.closed) return;
    const rt: PodRuntime = {
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      podIP: null,
      scheduled: false,
      process: null,
      pid: 0,
      init: 0,
      env: {},
      volumes: {},
      restartCount: 0,
      crashes: 0,
      startedAt: 0,
      startedAtText: '',
      containerID: '',
      looping: false,
      terminating: false,
      ready: false,
      timers: new Set(),
      exitRecorded: null,
      syncing: null,
    };
    this.runtimes.set(rt.uid, rt);
    void this.sync(rt);
  }

  /** Graceful deletion: SIGTERM, SIGKILL after the grace period; the pod goes once its container has. */
  podDeleting(pod: KubeObject, graceSeconds: number): void {
    const rt = this.runtimes.get(pod.metadata.uid);
    if (!rt) return;
    rt.terminating = true;
    this.clearTimers(rt);
    if (!rt.process) {
      this.store.removePod(rt.namespace, rt.name, rt.uid);
      return;
    }
    killQuietly(rt.pid, 'SIGTERM');
    this.later(rt, graceSeconds * 1000, () => killQuietly(rt.init, 'SIGKILL'));
  }

  /** The pod is gone from the store: whatever still runs is killed, its emptyDirs and IP freed. */
  podRemoved(pod: KubeObject): void {
    const rt = this.runtimes.get(pod.metadata.uid);
    if (!rt) return;
    rt.terminating = true;
    this.clearTimers(rt);
    const cleanup = () => {
      this.runtimes.delete(rt.uid);
      if (rt.podIP) this.usedIPs.delete(rt.podIP);
      rmSync(this.podDir(rt), { recursive: true, force: true });
    };
    if (rt.process) {
      rt.process.once('exit', cleanup);
      killQuietly(rt.init, 'SIGKILL');
    } else cleanup();
  }

  /** Pods waiting on something (a node, a claim, a Secret, a pull) try again. */
  syncAll(): void {
    for (const rt of this.runtimes.values()) if (!rt.process && !rt.terminating && rt.timers.size === 0) void this.sync(rt);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const rt of this.runtimes.values()) rt.terminating = true;
    // A start under way sees `terminating` once its container is up, and kills it.
    await Promise.allSettled([...this.syncing]);
    const exits: Promise<unknown>[] = [];
    for (const rt of this.runtimes.values()) {
      rt.terminating = true;
      this.clearTimers(rt);
      if (rt.process) {
        exits.push(new Promise((resolve) => rt.process!.once('exit', resolve)));
        killQuietly(rt.init, 'SIGKILL');
      }
    }
    await Promise.all(exits);
    this.runtimes.clear();
  }

  // ---- one pod ----

  private pod(rt: PodRuntime): KubeObject | null {
    const pod = this.store.get('pods', rt.namespace, rt.name);
    return pod && pod.metadata.uid === rt.uid ? pod : null;
  }

  private update(rt: PodRuntime, mutate: (pod: KubeObject) => void): void {
    this.store.updatePod(rt.namespace, rt.name, rt.uid, mutate);
  }

  private later(rt: PodRuntime, ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      rt.timers.delete(timer);
      run();
    }, ms);
    rt.timers.add(timer);
  }

  private clearTimers(rt: PodRuntime): void {
    for (const timer of rt.timers) clearTimeout(timer);
    rt.timers.clear();
  }

  private podDir(rt: PodRuntime): string {
    return join(this.options.dataDir, 'pods', rt.uid);
  }

  /** One sync per pod at a time: a second one (a Secret or claim appearing meanwhile) would start a second container. */
  private sync(rt: PodRuntime): Promise<void> {
    if (rt.syncing) return rt.syncing;
    const run = this.syncOnce(rt).finally(() => {
      this.syncing.delete(run);
      rt.syncing = null;
    });
    rt.syncing = run;
    this.syncing.add(run);
    return run;
  }

  private async syncOnce(rt: PodRuntime): Promise<void> {
    const pod = this.pod(rt);
    if (!pod || rt.terminating || rt.process) return;
    if (!rt.scheduled) {
      const missing = (pod.spec.volumes ?? []).map((v: any) => v.persistentVolumeClaim?.claimName).filter((c: string | undefined) => c && !this.store.get('persistentvolumeclaims', rt.namespace, c));
      const why = this.noNode ? '1 node(s) were unschedulable' : missing.length ? `persistentvolumeclaim ${JSON.stringify(missing[0])} not found` : null;
      if (why) {
        return this.update(rt, (p) => {
          p.status.conditions = [condition('PodScheduled', 'False', 'Unschedulable', `0/1 nodes are available: ${why}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.`)];
        });
      }
      rt.podIP = await this.allocatePodIP(pod);
      if (!this.pod(rt) || rt.terminating) return;
      rt.scheduled = true;
      this.update(rt, (p) => {
        p.spec.nodeName = NODE_NAME;
        p.status = {
          ...p.status,
          phase: 'Pending',
          hostIP: '127.0.0.1',
          hostIPs: [{ ip: '127.0.0.1' }],
          podIP: rt.podIP,
          podIPs: [{ ip: rt.podIP }],
          startTime: timestamp(),
          conditions: [
            condition('PodReadyToStartContainers', 'True'),
            condition('Initialized', 'True'),
            condition('Ready', 'False', 'ContainersNotReady', `containers with unready status: [${p.spec.containers[0].name}]`),
            condition('ContainersReady', 'False', 'ContainersNotReady', `containers with unready status: [${p.spec.containers[0].name}]`),
            condition('PodScheduled', 'True'),
          ],
          containerStatuses: [containerStatus(p.spec.containers[0], { waiting: { reason: 'ContainerCreating' } }, rt, false)],
        };
      });
    }
    await this.startContainer(rt);
  }

  private waiting(rt: PodRuntime, reason: string, message: string, retryMs: number): void {
    this.update(rt, (p) => {
      p.status.containerStatuses = [{ ...containerStatus(p.spec.containers[0], { waiting: { reason, message } }, rt, false), lastState: p.status.containerStatuses?.[0]?.lastState ?? {} }];
    });
    this.later(rt, retryMs, () => void this.sync(rt));
  }

  private async startContainer(rt: PodRuntime): Promise<void> {
    const pod = this.pod(rt)!;
    const container = pod.spec.containers[0];
    if (this.failingPulls.has(container.image)) {
      this.waiting(rt, 'ErrImagePull', `failed to pull and unpack image "${container.image}": failed to resolve reference "${container.image}": not found`, 50);
      // The next attempt shows the back-off, as a kubelet's does after a failed pull.
      rt.timers.forEach(clearTimeout);
      rt.timers.clear();
      this.later(rt, 50, () => {
        if (!this.failingPulls.has(container.image)) return void this.sync(rt);
        this.waiting(rt, 'ImagePullBackOff', `Back-off pulling image "${container.image}"`, 500);
      });
      return;
    }
    let env: Record<string, string>;
    let mounts: Array<{ host: string; path: string; readOnly: boolean }>;
    try {
      env = this.environment(pod, container);
      mounts = this.mounts(rt, pod, container);
    } catch (err) {
      if (!(err instanceof ContainerConfigError)) throw err;
      return this.waiting(rt, 'CreateContainerConfigError', err.message, 500);
    }
    rt.env = env;
    rt.containerID = `containerd://${randomBytes(32).toString('hex')}`;
    rt.startedAt = Date.now();
    rt.startedAtText = timestamp();
    rt.ready = false;
    if (rt.looping) {
      // A container that dies as it starts: no process to run.
      this.update(rt, (p) => {
        p.status.phase = 'Running';
        p.status.containerStatuses = [{ ...containerStatus(container, { running: { startedAt: rt.startedAtText } }, rt, false), lastState: p.status.containerStatuses?.[0]?.lastState ?? {} }];
      });
      this.later(rt, 20, () => this.exited(rt, 1, null));
      return;
    }
    let started;
    try {
      started = await this.spawnContainer(rt, pod, container, env, mounts);
    } catch (err) {
      const log = readFileSync(join(this.podDir(rt), `${container.name}.log`), 'utf8').trim().split('\n').pop();
      return this.waiting(rt, 'RunContainerError', `${(err as Error).message}${log ? `: ${log}` : ''}`, 1000);
    }
    const { child, init, pid, exit } = started;
    if (rt.terminating) {
      const gone = child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('exit', resolve)) : null;
      killQuietly(init, 'SIGKILL');
      await gone;
      return;
    }
    rt.process = child;
    rt.init = init;
    rt.pid = pid;
    rt.exitRecorded = exit.then(([code, signal]) => this.exited(rt, code ?? 128 + 9, signal));
    this.update(rt, (p) => {
      p.status.phase = 'Running';
      p.status.containerStatuses = [{ ...containerStatus(container, { running: { startedAt: rt.startedAtText } }, rt, false), lastState: p.status.containerStatuses?.[0]?.lastState ?? {} }];
    });
    this.probe(rt, container, 0);
  }

  /** The readiness probe (httpGet on the pod IP; none: ready once running), fast until the first success, then every periodSeconds. */
  private probe(rt: PodRuntime, container: any, failures: number): void {
    const probe = container.readinessProbe;
    const http = probe?.httpGet;
    const period = (probe?.periodSeconds ?? 10) * 1000;
    const threshold = probe?.failureThreshold ?? 3;
    const check = (): Promise<boolean> => {
      if (!http) return Promise.resolve(true);
      const port = typeof http.port === 'number' ? http.port : (container.ports ?? []).find((p: any) => p.name === http.port)?.containerPort ?? Number(http.port);
      return new Promise((resolve) => {
        const req = request({ host: http.host ?? rt.podIP, port, path: http.path ?? '/', method: 'GET', timeout: (probe.timeoutSeconds ?? 1) * 1000 }, (res) => {
          res.resume();
          resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
        });
        req.on('error', () => resolve(false));
        req.on('timeout', () => req.destroy());
        req.end();
      });
    };
    void check().then((ok) => {
      if (!rt.process || rt.terminating) return;
      const process = rt.process;
      if (ok !== rt.ready && (ok || failures + 1 >= threshold)) this.setReady(rt, ok);
      if (rt.process !== process) return;
      this.later(rt, rt.ready ? period : Math.min(period, this.options.probeIntervalMs ?? 100), () => this.probe(rt, container, ok ? 0 : failures + 1));
    });
  }

  private setReady(rt: PodRuntime, ready: boolean): void {
    rt.ready = ready;
    this.update(rt, (p) => {
      const name = p.spec.containers[0].name;
      const status = ready ? condition('Ready', 'True') : condition('Ready', 'False', 'ContainersNotReady', `containers with unready status: [${name}]`);
      p.status.conditions = p.status.conditions.map((c: any) => (c.type === 'Ready' || c.type === 'ContainersReady' ? { ...status, type: c.type } : c));
      p.status.containerStatuses[0].ready = ready;
    });
  }

  /** The container ended: by its restart policy it starts again (at once the first time, then with a growing back-off), or the pod ends. */
  private exited(rt: PodRuntime, code: number, signal: NodeJS.Signals | null): void {
    rt.process = null;
    rt.pid = 0;
    this.clearTimers(rt);
    if (rt.terminating) {
      this.store.removePod(rt.namespace, rt.name, rt.uid);
      return;
    }
    const pod = this.pod(rt);
    if (!pod) return;
    const exitCode = signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : code;
    const terminated = { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: rt.startedAtText, finishedAt: timestamp(), containerID: rt.containerID } };
    const policy = pod.spec.restartPolicy;
    const restarts = policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
    if (Date.now() - rt.startedAt > (this.options.backoffResetMs ?? 10_000)) rt.crashes = 0;
    const base = this.options.backoffMs ?? 200;
    const delay = rt.crashes === 0 ? 0 : Math.min(base * 2 ** (rt.crashes - 1), base * 8);
    rt.crashes++;
    rt.ready = false;
    const container = pod.spec.containers[0];
    this.update(rt, (p) => {
      const name = container.name;
      p.status.conditions = p.status.conditions.map((c: any) => (c.type === 'Ready' || c.type === 'ContainersReady' ? condition(c.type, 'False', 'ContainersNotReady', `containers with unready status: [${name}]`) : c));
      if (!restarts) {
        p.status.phase = exitCode === 0 ? 'Succeeded' : 'Failed';
        p.status.containerStatuses = [containerStatus(container, terminated, rt, false)];
        return;
      }
      const state = delay
        ? { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${formatDuration(delay)} restarting failed container=${name} pod=${rt.name}_${rt.namespace}(${rt.uid})` } }
        : terminated;
      p.status.containerStatuses = [{ ...containerStatus(container, state, rt, false), lastState: terminated }];
    });
    if (!restarts) return;
    this.later(rt, delay, () => {
      rt.restartCount++;
      void this.sync(rt);
    });
  }

  /** The pod's environment, from its spec only: values, Secret keys (optional ones may be missing), the downward API. */
  private environment(pod: KubeObject, container: any): Record<string, string> {
    const env: Record<string, string> = { PATH: CONTAINER_PATH, HOSTNAME: pod.metadata.name };
    const secret = (name: string) => this.store.get('secrets', pod.metadata.namespace, name);
    for (const from of container.envFrom ?? []) {
      if (!from.secretRef) continue;
      const s = secret(from.secretRef.name);
      if (!s) {
        if (from.secretRef.optional) continue;
        throw new ContainerConfigError(`secret "${from.secretRef.name}" not found`);
      }
      for (const [key, value] of Object.entries(s.data ?? {})) env[`${from.prefix ?? ''}${key}`] = Buffer.from(value as string, 'base64').toString('utf8');
    }
    for (const variable of container.env ?? []) {
      const ref = variable.valueFrom;
      if (!ref) {
        env[variable.name] = expand(variable.value ?? '', env);
      } else if (ref.secretKeyRef) {
        const { name, key, optional } = ref.secretKeyRef;
        const s = secret(name);
        const value = s?.data?.[key];
        if (value === undefined) {
          if (optional) continue;
          throw new ContainerConfigError(s ? `couldn't find key ${key} in Secret ${pod.metadata.namespace}/${name}` : `secret "${name}" not found`);
        }
        env[variable.name] = Buffer.from(value, 'base64').toString('utf8');
      } else if (ref.fieldRef) {
        env[variable.name] = fieldOf(pod, ref.fieldRef.fieldPath);
      } else {
        throw new ContainerConfigError(`the fake kubelet resolves no ${Object.keys(ref)[0]} (${variable.name})`);
      }
    }
    return env;
  }

  /** Each volume mount's host folder: a claim's folder (kept with the claim), an emptyDir's (gone with the pod). */
  private mounts(rt: PodRuntime, pod: KubeObject, container: any): Array<{ host: string; path: string; readOnly: boolean }> {
    const fsGroup = pod.spec.securityContext?.fsGroup;
    return (container.volumeMounts ?? []).map((mount: any) => {
      const volume = (pod.spec.volumes ?? []).find((v: any) => v.name === mount.name);
      if (!volume) throw new ContainerConfigError(`volume ${JSON.stringify(mount.name)} not found`);
      let host: string;
      if (volume.persistentVolumeClaim) {
        const pvc = this.store.get('persistentvolumeclaims', pod.metadata.namespace, volume.persistentVolumeClaim.claimName);
        if (!pvc) throw new ContainerConfigError(`persistentvolumeclaim "${volume.persistentVolumeClaim.claimName}" not found`);
        host = this.claimFolder(pvc);
        // fsGroup: the volume's group is the pod's, writable by it (setgid: new files too).
        if (fsGroup !== undefined && process.getuid?.() === 0) {
          chownSync(host, 0, fsGroup);
          chmodSync(host, 0o2775);
        }
      } else if (volume.emptyDir) {
        host = join(this.podDir(rt), 'volumes', volume.name);
        mkdirSync(host, { recursive: true });
        chmodSync(host, 0o1777);
      } else {
        throw new ContainerConfigError(`the fake kubelet mounts no ${Object.keys(volume).find((k) => k !== 'name')} volume (${volume.name})`);
      }
      rt.volumes[volume.name] = host;
      return { host, path: mount.mountPath, readOnly: mount.readOnly === true };
    });
  }

  /** A pod IP on the host's loopback (127.80.0.0/16) free for the pod's ports (other fakes may run beside this one). */
  private async allocatePodIP(pod: KubeObject): Promise<string> {
    const ports: number[] = pod.spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => p.containerPort));
    for (let attempt = 0; attempt < 100; attempt++) {
      const n = 1 + Math.floor(Math.random() * 65_533);
      const ip = `127.80.${n >> 8}.${n & 255}`;
      if (this.usedIPs.has(ip) || !(await portsFree(ip, ports))) continue;
      this.usedIPs.add(ip);
      return ip;
    }
    throw new Error('no free pod IP in 127.80.0.0/16');
  }

  /** Starts the container's command in its jail; resolves with the host pids of the jail's init and of the command. */
  private async spawnContainer(rt: PodRuntime, pod: KubeObject, container: any, env: Record<string, string>, mounts: Array<{ host: string; path: string; readOnly: boolean }>) {
    const command = [...(container.command?.length ? [] : this.command), ...(container.command ?? []), ...(container.args ?? [])];
    const sc = { ...pod.spec.securityContext, ...container.securityContext };
    const root = process.getuid?.() === 0;
    const uid = root ? (sc.runAsUser ?? IMAGE_USER) : (process.getuid?.() ?? 0);
    const gid = root ? (sc.runAsGroup ?? uid) : (process.getgid?.() ?? 0);
    const dir = this.podDir(rt);
    mkdirSync(join(dir, 'etc'), { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o711);
    const args: string[] = [];
    if (this.options.isolation === 'none') {
      // Only a mount namespace: the host's folders as they are, the pod's volumes over them.
      for (const entry of readdirSync('/')) {
        const path = `/${entry}`;
        const stat = lstatSync(path);
        if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
        else if (stat.isDirectory()) args.push('--dev-bind', path, path);
      }
      if (!root) args.push('--unshare-user');
    } else {
      args.push(...jailRootArgs(pod.metadata.name, { shareNetwork: true }));
      for (const [path, text] of Object.entries(etcFiles(uid, gid, container.workingDir ?? '/', 'none'))) {
        const file = join(dir, 'etc', path.slice('/etc/'.length));
        writeFileSync(file, text, { mode: 0o644 });
        args.push('--ro-bind', file, path);
      }
    }
    for (const m of mounts) args.push(m.readOnly ? '--ro-bind' : '--bind', m.host, m.path);
    if (this.options.isolation !== 'none') {
      // The image: bound after the volumes, so a checkout under /tmp is not hidden by the pod's /tmp volume.
      this.code ??= codePaths(projectRoot(), command.find((c) => c.endsWith('.js')) ?? command[0]);
      for (const path of this.code) args.push('--ro-bind', path, path);
    }
    if (this.options.isolation !== 'none' && sc.readOnlyRootFilesystem) args.push('--remount-ro', '/');
    // bwrap sets PWD after its --chdir, which no container runtime does: env (which execs the command) unsets it.
    args.push('--chdir', container.workingDir ?? '/', '--info-fd', '3', '--', '/usr/bin/env', '-u', 'PWD', ...command);
    const log = openSync(join(dir, `${container.name}.log`), 'a', 0o600);
    const child = spawn(BWRAP, args, { env, stdio: ['ignore', log, log, 'pipe'], ...(root && this.options.isolation !== 'none' ? { uid, gid } : {}) });
    closeSync(log);
    child.on('error', () => undefined);
    // Listened for at once: a jail that fails to set up ends before its info is read.
    let ended = false;
    const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (code, signal) => {
        ended = true;
        resolve([code, signal]);
      }),
    );
    const info = await readInfo(child.stdio[3] as Readable);
    const init = info['child-pid'];
    // In a jail the command is the child of bwrap's init (pid 1 of its namespace); without one, the child itself.
    let pid = init;
    if (this.options.isolation !== 'none') {
      for (let i = 0; i < 200 && pid === init && !ended; i++) {
        pid = childrenOf(init)[0] ?? init;
        if (pid === init) await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    return { child, init, pid, exit };
  }
}

function condition(type: string, status: 'True' | 'False', reason?: string, message?: string): Record<string, unknown> {
  return { type, status, lastProbeTime: null, lastTransitionTime: timestamp(), ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
}

function containerStatus(container: any, state: Record<string, unknown>, rt: PodRuntime, ready: boolean): Record<string, unknown> {
  return {
    name: container.name,
    image: container.image,
    imageID: `${container.image.split(':')[0]}@sha256:${'0'.repeat(64)}`,
    ...(rt.containerID ? { containerID: rt.containerID } : {}),
    ready,
    started: 'running' in state,
    restartCount: rt.restartCount,
    state,
    lastState: {},
  };
}

function fieldOf(pod: KubeObject, path: string): string {
  const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (label) return pod.metadata[label[1]]?.[label[2]] ?? '';
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'spec.nodeName': pod.spec.nodeName,
    'spec.serviceAccountName': pod.spec.serviceAccountName,
    'status.podIP': pod.status?.podIP,
    'status.hostIP': pod.status?.hostIP,
  };
  if (!(path in fields)) throw new ContainerConfigError(`unsupported fieldRef ${path}`);
  return fields[path] ?? '';
}

/** `$(NAME)` of an earlier variable, as the kubelet expands a value; `$$` escapes. */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, name) => (match === '$$' ? '$' : (env[name] ?? match)));
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function formatDuration(ms: number): string {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}


async function portsFree(ip: string, ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, ip, () => server.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

/** bwrap's `--info-fd` JSON (its child's pid). */
function readInfo(stream: Readable): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk) => (text += chunk));
    stream.on('error', () => undefined);
    stream.once('close', () => {
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`bwrap gave no info (${JSON.stringify(text)})`));
      }
    });
  });
}
