import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SandboxLimits, SandboxNetwork } from '@berth/config';
import { SandboxError } from './sandbox-driver';

export type { SandboxLimits, SandboxNetwork };

export const BWRAP = '/usr/bin/bwrap';
const PRLIMIT = '/usr/bin/prlimit';
const SLIRP4NETNS = '/usr/bin/slirp4netns';

/** The top folder of OpenHands' virtual working dirs (`/workspace/project`). */
export const VIRTUAL_WORKSPACE = 'workspace';

/** uids of sandboxes: base + hash(id) mod 2^24 (a collision shares only an RLIMIT_NPROC count: namespaces keep them apart). */
const UID_SPAN = 2 ** 24;

/** Host folders a sandbox sees read-only: programs and libraries (node, bash, git, coreutils). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/**
 * The parts of the host's /etc a shell and git need. Not the rest: a hosted server's /etc may hold
 * credentials (ssh keys, shadow, TLS keys, service configuration).
 */
const ETC_FILES = [
  '/etc/alternatives',
  '/etc/bash.bashrc',
  '/etc/ca-certificates',
  '/etc/ca-certificates.conf',
  '/etc/environment',
  '/etc/gitconfig',
  '/etc/inputrc',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/localtime',
  '/etc/login.defs',
  '/etc/mime.types',
  '/etc/nsswitch.conf',
  '/etc/profile',
  '/etc/protocols',
  '/etc/services',
  '/etc/ssl/certs',
  '/etc/terminfo',
  '/etc/timezone',
];

/** The sandbox's uid on the host (the server runs as root) or null (it runs as the server's user, in a user namespace). */
export function sandboxUid(id: string, base: number): number | null {
  if (process.getuid?.() !== 0) return null;
  return base + (createHash('sha256').update(id).digest().readUInt32BE(0) % UID_SPAN);
}

/** What bwrap needs to know of one sandbox. */
export interface JailSpec {
  /** The sandbox's folder on the host, mounted writable at the same path inside. */
  root: string;
  /** Inherited fd (in the child) of the open root folder: bwrap runs as the sandbox's uid, which cannot walk the host's private folders. */
  rootFd: number;
  /** Read-only binds of the executor's code: inherited fd → path inside. */
  codeFds: Array<[number, string]>;
  /** Generated files (passwd, group, hosts, …): inherited fd → path inside. */
  dataFds: Array<[number, string]>;
  infoFd: number;
  blockFd: number;
  network: SandboxNetwork;
  cwd: string;
}

/** Every namespace new (user, pid, mount, ipc, uts, net, cgroup), no nested user namespace, no capability. */
const JAIL_FLAGS = ['--unshare-all', '--unshare-user', '--disable-userns', '--new-session', '--cap-drop', 'ALL'];

/** The system folders read-only, and the usrmerge links (`/bin` → `usr/bin`) as links. */
function systemBinds(): string[] {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    let stat;
    try {
      stat = lstatSync(dir);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else if (stat.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  return args;
}

/**
 * The start of every jail's bwrap arguments: every namespace new (the network one kept with
 * `shareNetwork`), no capability, a root of its own made of read-only system folders, the parts of
 * /etc a shell needs, /proc, /dev and a private /tmp and /run.
 */
export function jailRootArgs(hostname: string, { shareNetwork = false } = {}): string[] {
  const args = [...JAIL_FLAGS, ...(shareNetwork ? ['--share-net'] : []), '--hostname', hostname, ...systemBinds()];
  for (const path of ETC_FILES) args.push('--ro-bind-try', path, path);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', '/run', '--dir', '/var/tmp');
  return args;
}

/** bwrap's arguments: every namespace new, no capability, a root of its own made of read-only system folders, its folder and a private /tmp. */
export function bwrapArgs(spec: JailSpec): string[] {
  const args = jailRootArgs('sandbox');
  for (const [fd, path] of spec.codeFds) args.push('--ro-bind-fd', String(fd), path);
  for (const [fd, path] of spec.dataFds) args.push('--ro-bind-data', String(fd), path);
  // Last, so that a root under /tmp (tests, a data dir there) lands on the private /tmp.
  args.push('--bind-fd', String(spec.rootFd), spec.root, '--chdir', spec.cwd);
  // OpenHands' working dirs live under /workspace, and Berth keeps a virtual working dir such as
  // /workspace/project at <root>/workspace/project (sandboxWorkingDir): the link makes a command that
  // names the virtual path reach the same folder as the workspace API. A link, not a bind: whatever
  // sandbox code puts at <root>/workspace, it points only into what the jail already sees.
  // (Not when the sandbox folder itself lies under /workspace: it is mounted there already.)
  if (!`${spec.root}/`.startsWith(`/${VIRTUAL_WORKSPACE}/`)) {
    args.push('--symlink', `${spec.root}/${VIRTUAL_WORKSPACE}`, `/${VIRTUAL_WORKSPACE}`);
  }
  args.push('--info-fd', String(spec.infoFd), '--block-fd', String(spec.blockFd));
  return args;
}

/** prlimit's arguments for the limits that are per process; RLIMIT_NPROC only with a uid of its own (it counts every process of the uid). */
export function prlimitArgs(limits: SandboxLimits, ownUid: boolean): string[] {
  const args: string[] = [];
  const set = (name: string, value: number) => value > 0 && args.push(`--${name}=${value}:${value}`);
  set('nofile', limits.openFiles);
  set('cpu', limits.cpuSeconds);
  set('fsize', limits.fileSizeBytes);
  if (ownUid) set('nproc', limits.processes);
  return args.length ? [PRLIMIT, ...args, '--'] : [];
}

/** Files of /etc made for the sandbox: its user and a loopback-only hosts file (and a resolver with egress). */
export function etcFiles(uid: number, gid: number, home: string, network: SandboxNetwork): Record<string, string> {
  return {
    '/etc/passwd': `root:x:0:0:root:/root:/bin/bash\nsandbox:x:${uid}:${gid}:sandbox:${home}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    '/etc/group': `root:x:0:\nsandbox:x:${gid}:\nnogroup:x:65534:\n`,
    '/etc/hosts': '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    '/etc/hostname': 'sandbox\n',
    // slirp4netns' resolver; without egress nothing resolves.
    '/etc/resolv.conf': network === 'egress' ? 'nameserver 10.0.2.3\n' : '',
  };
}

/**
 * Whether bwrap can run a sandbox here (installed, user namespaces allowed): runs `true` in a jail
 * as a sandbox would be run. The reason it cannot, or null.
 */
export function probeBubblewrap(uidBase: number): string | null {
  if (!existsSync(BWRAP)) return `${BWRAP} is not installed`;
  const uid = sandboxUid('probe', uidBase);
  const args = [...JAIL_FLAGS, ...systemBinds(), '--proc', '/proc', '--', 'true'];
  const probe = spawnSync(BWRAP, args, { encoding: 'utf8', timeout: 10_000, ...(uid === null ? {} : { uid, gid: uid }) });
  if (probe.error) return probe.error.message;
  return probe.status === 0 ? null : `bwrap failed (${probe.status ?? probe.signal}): ${probe.stderr.trim()}`;
}

/**
 * Per-sandbox control groups for what rlimits cannot bound (all processes' memory, their number):
 * cgroup v1 `memory` and `pids` hierarchies under this process's own groups, or cgroup v2. Only
 * where this process may create groups (root, or a delegated v2 subtree); elsewhere limits are rlimits only.
 */
export class SandboxCgroups {
  private constructor(private readonly parents: Record<'memory' | 'pids', string | null>) {}

  /** No groups (an unisolated driver). */
  static none(): SandboxCgroups {
    return new SandboxCgroups({ memory: null, pids: null });
  }

  /** The groups this machine lets us make, found from /proc/self/cgroup. */
  static detect(): SandboxCgroups {
    const parents: Record<'memory' | 'pids', string | null> = { memory: null, pids: null };
    let lines: string[];
    try {
      lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    } catch {
      return new SandboxCgroups(parents);
    }
    for (const line of lines) {
      const [, controllers, path] = line.split(':');
      if (controllers === '' && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
        // v2: one tree; the controllers must be enabled for our children.
        const dir = join('/sys/fs/cgroup', path);
        const enabled = readSafe(join(dir, 'cgroup.subtree_control'));
        for (const name of ['memory', 'pids'] as const) if (enabled.split(' ').includes(name) && writable(dir)) parents[name] = dir;
      }
      for (const name of ['memory', 'pids'] as const) {
        if (controllers.split(',').includes(name)) {
          const dir = join('/sys/fs/cgroup', name, path);
          if (writable(dir)) parents[name] = dir;
        }
      }
    }
    return new SandboxCgroups(parents);
  }

  get available(): string[] {
    return (['memory', 'pids'] as const).filter((name) => this.parents[name]);
  }

  private dirs(id: string): string[] {
    return [...new Set(Object.values(this.parents).filter((p): p is string => p !== null))].map((parent) => join(parent, `berth-${id}`));
  }

  /**
   * Makes the sandbox's groups with their limits, before its jail exists (so that this runs while
   * bwrap sets the jail up); `attach` then moves the jail in. The groups are set up in parallel.
   */
  async prepare(id: string, limits: SandboxLimits): Promise<void> {
    await Promise.all(
      Object.entries(this.parents).map(async ([name, parent]) => {
        if (!parent) return;
        const dir = join(parent, `berth-${id}`);
        await mkdir(dir, { recursive: true });
        const v2 = existsSync(join(dir, 'cgroup.controllers'));
        if (name === 'memory' && limits.memoryBytes > 0) {
          await Promise.all([
            writeFile(join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limits.memoryBytes)),
            v2 ? writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined) : undefined,
          ]);
        }
        if (name === 'pids' && limits.processes > 0) await writeFile(join(dir, 'pids.max'), String(limits.processes));
      }),
    );
  }

  /** Moves `pid` (and so its future children) into the groups `prepare` made. */
  async attach(id: string, pid: number): Promise<void> {
    await Promise.all(this.dirs(id).map((dir) => writeFile(join(dir, 'cgroup.procs'), String(pid))));
  }

  /** Removes the sandbox's groups once its processes are gone (a group with processes cannot be removed: they are killed first). */
  async remove(id: string): Promise<void> {
    for (const dir of this.dirs(id)) {
      if (!existsSync(dir)) continue;
      for (const pid of (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      for (let attempt = 0; attempt < 40; attempt++) {
        try {
          await rmdir(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  }
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function writable(dir: string): boolean {
  try {
    const probe = join(dir, `berth-probe-${process.pid}`);
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * Gives the network namespace of `pid` a way out through slirp4netns (user-mode TCP/IP: the
 * sandbox's connections become this host's ordinary sockets). `--disable-host-loopback` keeps the
 * host's 127.0.0.1 out of reach. Resolves once the interface is up; the process ends with the namespace.
 */
export function startEgress(pid: number, logFd: number): Promise<number> {
  return new Promise((resolve, reject) => {
    // As root it enters the namespace by path, joining no user namespace: bwrap's --disable-userns
    // makes a nested one, and joining that would leave no right over the network namespace.
    const target = process.getuid?.() === 0 ? ['--netns-type=path', `/proc/${pid}/ns/net`] : [String(pid)];
    const slirp = spawn(SLIRP4NETNS, ['--configure', '--mtu=65520', '--disable-host-loopback', '--enable-seccomp', '--ready-fd=3', ...target, 'tap0'], {
      stdio: ['ignore', logFd, logFd, 'pipe'],
      detached: true,
    });
    slirp.unref();
    const ready = slirp.stdio[3]!;
    const timer = setTimeout(() => fail(new Error('slirp4netns was not ready within 10 s')), 10_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      slirp.kill('SIGKILL');
      reject(new SandboxError(`egress: ${err.message}`));
    };
    slirp.once('error', fail);
    slirp.once('exit', (code) => fail(new Error(`slirp4netns exited (${code})`)));
    ready.once('data', () => {
      clearTimeout(timer);
      slirp.removeAllListeners('exit');
      ready.destroy();
      resolve(slirp.pid!);
    });
  });
}

/** Parent pid of a process, from /proc (null if it is gone). */
function parentOf(pid: number): number | null {
  const stat = readSafe(`/proc/${pid}/stat`);
  const m = /^\d+ \(.*\) \S (\d+)/s.exec(stat);
  return m ? Number(m[1]) : null;
}

/** The host pids of `pid`'s children (bwrap's init inside the namespace has the executor as its one child). */
export function childrenOf(pid: number): number[] {
  // Forked right after it, the child's pid is almost always among the next few: no walk of /proc.
  for (let next = pid + 1; next <= pid + 16; next++) if (parentOf(next) === pid) return [next];
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && parentOf(Number(entry)) === pid) out.push(Number(entry));
  }
  return out;
}

/** Whether a process of ours is alive (ESRCH: gone; EPERM: another user's, so none of ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Signals a process that may be gone already. */
export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}
