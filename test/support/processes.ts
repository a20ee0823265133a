import { projectRoot } from '@berth/config';
import { ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function waitFor(url: string, status = 200, timeoutMs = 30_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.status === status) return res;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `check` every 50 ms; false when it has not held within `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** A live process (zombies excluded). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX] /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Exit code, or 'SIGTERM' for a clean Nest shutdown (it re-raises the signal after closing). */
export type Exit = number | string | null;

/** A built entry point (dist/…) as a child process, with only the given environment. */
export function run(script: string, args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; stdout: () => string; exited: Promise<Exit> } {
  const child = spawn(process.execPath, [join(projectRoot(), script), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'pipe' });
  let output = '';
  let stdout = '';
  child.stdout?.on('data', (d) => {
    output += d;
    stdout += d;
  });
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return { child, output: () => output, stdout: () => stdout, exited };
}

/** Resident memory of a process, in bytes (Linux). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export interface RunningExecutor {
  port: number;
  child: ChildProcess;
  exited: Promise<Exit>;
  output: () => string;
  stop(): Promise<Exit>;
}

/** The built executor for a sandbox root, started as the local driver starts it; resolves once ready. */
export async function startExecutor(root: string, token: string, env: Record<string, string> = {}): Promise<RunningExecutor> {
  const proc = run('dist/apps/executor/src/main.js', [], { BERTH_SANDBOX_TOKEN: token, BERTH_SANDBOX_ROOT: root, BERTH_EXECUTOR_PORT: '0', ...env });
  const deadline = Date.now() + 10_000;
  while (!proc.output().includes('\n')) {
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`the executor did not start: ${proc.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const ready = JSON.parse(proc.output().split('\n')[0]) as { executor: string; port: number };
  if (ready.executor !== 'ready') throw new Error(`unexpected ready line: ${proc.output()}`);
  return {
    port: ready.port,
    child: proc.child,
    exited: proc.exited,
    output: proc.output,
    stop: async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
      return proc.exited;
    },
  };
}

/** Every process working inside `dir` (Linux /proc, by working directory), with that directory. */
export function processesUnder(dir: string): { pid: number; cwd: string }[] {
  const found: { pid: number; cwd: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid || !alive(Number(entry))) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${entry}/cwd`).replace(/ \(deleted\)$/, '');
    } catch {
      continue;
    }
    if (cwd === dir || cwd.startsWith(`${dir}/`)) found.push({ pid: Number(entry), cwd });
  }
  return found;
}

/**
 * Ends every process working inside `dir`: executors orphaned on purpose by a test that kill -9s
 * their parent must not outlive the test.
 */
export function killProcessesUnder(dir: string): number {
  let killed = 0;
  for (const { pid } of processesUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      /* already gone */
    }
  }
  return killed;
}
