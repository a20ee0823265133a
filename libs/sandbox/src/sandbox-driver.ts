import { isAbsolute, join, normalize } from 'node:path';
/** What a caller asks for: the sandbox's id (a uuid, also its folder or pod name) and extra variables for its executor. */
export interface SandboxSpec {
  id: string;
  env?: Record<string, string>;
  /** `none`: its own loopback only; `egress`: the outside, never this host's services (default: the driver's). */
  network?: 'none' | 'egress';
  /** The tenant it belongs to (a label of its pod, for the cluster's operators). */
  tenantId?: string;
  /** With `egress`: ranges the tenant may reach beyond the outside (its quotas' `egress_cidrs`; never link-local or the cluster's). */
  egressCidrs?: string[];
}

/** `running`: the executor answers; `stopped`: no executor (files kept); `error`: an executor that is up but broken, or died on its own. */
export type SandboxStatus = 'running' | 'stopped' | 'error';

/**
 * A sandbox the platform holds resources for, as its driver sees them: `running` (an executor
 * process or pod is up or coming up), `stopped` (only its files, Secret or volume are left), `error`
 * (it failed there; `reason` says why, e.g. ImagePullBackOff).
 */
export interface DriverResource {
  sandboxId: string;
  state: 'running' | 'stopped' | 'error';
  reason?: string;
}

/** A sandbox run by `LocalSandboxDriver`: an executor child process working in `root`. */
export interface LocalSandboxHandle {
  driver: 'local';
  id: string;
  /** Where the executor listens: `unix:<socket path>`, a socket in the driver's private folder (no TCP port). */
  url: string;
  /** The executor's only credential (`X-Sandbox-Token`). */
  token: string;
  root: string;
  /** The executor's pid on the host. */
  pid: number;
  /** Host pid of the init of its bubblewrap pid namespace (isolated sandboxes): killing it ends every process of the sandbox. */
  init?: number;
  /** Host pid of the slirp4netns giving it egress. */
  egress?: number;
}

/** A sandbox run by `KubernetesSandboxDriver`: a pod of `template` in `namespace`, reached by its pod IP. */
export interface KubernetesSandboxHandle {
  driver: 'kubernetes';
  id: string;
  /** `http://<podIP>:8080` */
  url: string;
  token: string;
  namespace: string;
  pod: string;
  /** The Secret holding its token (and what its executor serves after a restart). */
  secret: string;
  /** Its workspace PVC; null for an emptyDir (lost with the pod). */
  volume: string | null;
  template: string;
}

/**
 * Everything a caller needs to reach and manage a sandbox later, as plain JSON (stored in
 * `sandboxes.handle`).
 */
export type SandboxHandle = LocalSandboxHandle | KubernetesSandboxHandle;

/** Where a sandbox's files are, as its executor names them: its folder, or a pod's /workspace volume. */
export function sandboxRoot(handle: SandboxHandle): string {
  return handle.driver === 'kubernetes' ? POD_WORKSPACE : handle.root;
}

export const POD_WORKSPACE = '/workspace';

/**
 * The working directory inside a sandbox: a path already under the sandbox's root is kept; any
 * other (`/workspace/project`) is placed under the root, so nothing outside it is ever touched.
 */
export function sandboxWorkingDir(root: string, requested: string): string {
  const path = normalize(requested);
  if (isAbsolute(path) && (path === root || path.startsWith(`${root}/`))) return path;
  return join(root, path.replace(/^\/+/, ''));
}

export class SandboxError extends Error {
  /** A short machine word (ImagePullBackOff, Unschedulable, CrashLoopBackOff…) next to the human message. */
  constructor(
    message: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'SandboxError';
  }
}

/**
 * Starts, watches and removes sandboxes: one executor per sandbox, reached over HTTP with the
 * sandbox's token. Every method that changes a sandbox returns or takes the handle, so a handle
 * stored by one process (say, before a gateway restart) is enough for another to take over.
 */
export abstract class SandboxDriver {
  /** The `driver` its handles carry. */
  abstract readonly kind: SandboxHandle['driver'];

  /** Creates the sandbox's storage and starts its executor. */
  abstract provision(spec: SandboxSpec): Promise<SandboxHandle>;

  abstract status(handle: SandboxHandle): Promise<SandboxStatus>;

  /**
   * Returns a handle to a running executor: the current one when it answers, otherwise a restarted
   * one (new address, same token and files). Store the returned handle: its address may have changed.
   */
  abstract ensureRunning(handle: SandboxHandle): Promise<SandboxHandle>;

  /**
   * Whether this driver made the handle: its folder, socket and processes are this driver's to touch.
   * A stored handle of another data dir (or another driver) is not; the sandbox is started afresh.
   */
  abstract owns(handle: SandboxHandle): boolean;

  /** Stops the executor; the sandbox's files stay. */
  abstract stop(handle: SandboxHandle): Promise<void>;

  resume(handle: SandboxHandle): Promise<SandboxHandle> {
    return this.ensureRunning(handle);
  }

  /** Starts keeping executors ready for the next provisions (a driver without a warm pool does nothing). */
  warm(): void {}

  /**
   * The id a new sandbox should have, when the driver has an executor ready for that id (a pooled
   * one, started for an id chosen in advance): the caller makes its row with it and provisions it
   * soon, or the executor is discarded. Null (the default): any id; the sandbox starts cold.
   */
  reserveId(_network?: SandboxSpec['network']): string | null {
    return null;
  }

  /** Whether `copyWorkspace` can copy files between this driver's sandboxes (a fork's workspace). */
  readonly copiesWorkspaces: boolean = false;

  /**
   * Copies one sandbox's working dir (`workingDir`, placed in its root as `sandboxWorkingDir` does)
   * into another's, which need not have started: the files as they are now. A driver that cannot
   * (`copiesWorkspaces` false) refuses.
   */
  copyWorkspace(_fromId: string, _toId: string, _workingDir: string): Promise<void> {
    return Promise.reject(new SandboxError(`the ${this.kind} sandbox driver cannot copy a sandbox's files`));
  }

  /** Stops the executor and deletes the sandbox's files. */
  abstract destroy(handle: SandboxHandle): Promise<void>;

  /**
   * Every sandbox the platform holds resources for (folders, processes; pods, Secrets, PVCs) — the
   * warm pool's unclaimed executors left out: they are no sandbox's yet.
   */
  abstract inventory(): Promise<DriverResource[]>;

  /** Removes everything the platform holds for a sandbox that has no row (no handle names it any more). */
  abstract removeOrphan(sandboxId: string): Promise<void>;

  /**
   * Stops every executor this driver runs (process shutdown), except those of the sandboxes in
   * `keep`: their runs were handed to another worker, which goes on using them. The driver takes no
   * work afterwards.
   */
  abstract close(keep?: ReadonlySet<string>): Promise<void>;
}
