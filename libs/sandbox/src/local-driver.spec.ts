import { ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Test } from '@nestjs/testing';
import { BusModule } from '@berth/bus';
import { BerthConfig, ConfigModule } from '@berth/config';
import { CryptoModule } from '@berth/crypto';
import { PersistenceModule } from '@berth/persistence';
import { QueueModule } from '@berth/queue';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { ExecutorClient, executorRequestOptions } from './executor-client';
import { pidAlive } from './isolation';
import { LocalSandboxDriver } from './local-driver';
import { SandboxDriverFixture, describeSandboxDriverContract } from './sandbox-driver.contract';
import { LocalSandboxHandle, SandboxDriver, SandboxHandle } from './sandbox-driver';
import { SandboxManager } from './sandbox-manager';
import { SandboxModule } from './sandbox.module';
import { until } from '@berth/testing';

/** Needs the built executor (`npm test` builds first). */


async function environOf(pid: number): Promise<Record<string, string>> {
  const raw = await readFile(`/proc/${pid}/environ`, 'utf8');
  return Object.fromEntries(
    raw
      .split('\0')
      .filter(Boolean)
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  );
}

/** Live processes started for this sandbox folder (zombies have an empty environ and do not count). */
async function executorsIn(root: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // bwrap (the jail's outer process and its init) carries the environment on to the executor: not an executor itself.
      // The executors themselves: not bwrap, nor a git an executor runs meanwhile (it inherits the same environment).
      if ((await readlink(`/proc/${entry}/exe`)) !== process.execPath) continue;
      if ((await readFile(`/proc/${entry}/environ`, 'utf8')).split('\0').includes(`BERTH_SANDBOX_ROOT=${root}`)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

/** Live executors waiting in the warm pool of a data dir: started dormant in their future sandbox's folder, whose pool marker is still there. */
async function pooledIn(dataDir: string): Promise<number[]> {
  const sandboxes = join(dataDir, 'sandboxes');
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The executors themselves: not bwrap, nor a git an executor runs meanwhile (it inherits the same environment).
      if ((await readlink(`/proc/${entry}/exe`)) !== process.execPath) continue;
      const env = (await readFile(`/proc/${entry}/environ`, 'utf8')).split('\0');
      const root = env.find((v) => v.startsWith(`BERTH_SANDBOX_ROOT=${sandboxes}/`))?.slice('BERTH_SANDBOX_ROOT='.length);
      if (env.includes('BERTH_EXECUTOR_DORMANT=1') && root && existsSync(join(sandboxes, '.pool', basename(root)))) pids.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

/** The uid a process runs as on the host. */
async function uidOf(pid: number): Promise<number> {
  return Number(/^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** One call to an executor at its handle's address (a unix socket): status and JSON body. */
function callExecutor(handle: SandboxHandle, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-sandbox-token': handle.token, 'content-type': 'application/json' };
    const req = request({ ...executorRequestOptions(handle.url, path), method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Files the host writes into a sandbox's folder belong to the sandbox's uid, as its own would. */
async function chownLike(root: string, path: string): Promise<void> {
  const { uid, gid } = statSync(root);
  for (let p = path; p.startsWith(`${root}/`); p = dirname(p)) await chown(p, uid, gid);
}

function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'berth-sandbox-'));
}

async function localFixture(options: { dataDir?: string } = {}): Promise<SandboxDriverFixture & { dataDir: string }> {
  const dataDir = options.dataDir ?? tempDataDir();
  const driver = new LocalSandboxDriver({ dataDir });
  const rootOf = (handle: SandboxHandle) => join(dataDir, 'sandboxes', handle.id);
  const pidOf = (handle: SandboxHandle) => (handle as LocalSandboxHandle).pid;
  return {
    dataDir,
    driver,
    async crash(handle) {
      process.kill(pidOf(handle), 'SIGKILL');
      await until(() => !pidAlive(pidOf(handle)));
    },
    executorIdentity: (handle) => String(pidOf(handle)),
    countExecutors: async (handle) => (await executorsIn(rootOf(handle))).length,
    executorEnv: (handle) => environOf(pidOf(handle)),
    async writeFile(handle, path, content) {
      const file = join(rootOf(handle), path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
      await chownLike(rootOf(handle), file);
    },
    readFile: (handle, path) => readFile(join(rootOf(handle), path), 'utf8').catch(() => undefined),
    storageExists: async (handle) => existsSync(rootOf(handle)),
    dispose: () => rm(dataDir, { recursive: true, force: true }),
  };
}

describeSandboxDriverContract('local', () => localFixture());

describe('LocalSandboxDriver', () => {
  let dataDir: string;
  const drivers: SandboxDriver[] = [];
  const strangers: ChildProcess[] = [];

  const newDriver = (options: Partial<ConstructorParameters<typeof LocalSandboxDriver>[0]> = {}) => {
    const driver = new LocalSandboxDriver({ dataDir, ...options });
    drivers.push(driver);
    return driver;
  };

  beforeEach(() => {
    dataDir = tempDataDir();
  });

  afterEach(async () => {
    await Promise.all(drivers.splice(0).map((driver) => driver.close()));
    for (const stranger of strangers.splice(0)) stranger.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('runs the executor in <dataDir>/sandboxes/<id> (mode 0700) on a unix socket of the driver, logging its stderr in the private .logs', async () => {
    const driver = newDriver();
    const id = randomUUID();
    const handle = await driver.provision({ id });
    const root = join(dataDir, 'sandboxes', id);
    const socket = join(dataDir, 'sandboxes', '.sockets', `${id}.sock`);
    expect(handle).toEqual({ driver: 'local', id, url: `unix:${socket}`, token: expect.any(String), root, pid: expect.any(Number), init: expect.any(Number) });
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'sandboxes', '.sockets')).mode & 0o777).toBe(0o700);
    expect(statSync(socket).isSocket()).toBe(true);
    expect(existsSync(join(dataDir, 'sandboxes', '.logs', `${id}.log`))).toBe(true);
    expect(await environOf(handle.pid)).toMatchObject({ BERTH_SANDBOX_ROOT: root, BERTH_EXECUTOR_LISTEN_FD: '3' });
    expect(await environOf(handle.pid)).not.toHaveProperty('BERTH_EXECUTOR_PORT');
  });

  it("copies a sandbox's working dir into another's folder, owned by the other's uid, and refuses one that links out of its folder", async () => {
    const driver = newDriver();
    expect(driver.copiesWorkspaces).toBe(true);
    const [from, to, third] = [randomUUID(), randomUUID(), randomUUID()];
    await driver.provision({ id: from });
    const source = join(dataDir, 'sandboxes', from, 'workspace', 'project');
    await mkdir(join(source, 'src'), { recursive: true });
    await writeFile(join(source, 'src', 'a.txt'), 'copied\n');
    await symlink('src/a.txt', join(source, 'link'));
    await driver.copyWorkspace(from, to, '/workspace/project');
    const target = join(dataDir, 'sandboxes', to, 'workspace', 'project');
    expect(await readFile(join(target, 'src', 'a.txt'), 'utf8')).toBe('copied\n');
    expect(await readlink(join(target, 'link'))).toBe('src/a.txt');
    // The target starts on the copy, which its own uid may change.
    const handle = (await driver.provision({ id: to })) as LocalSandboxHandle;
    const wrote = await new ExecutorClient(handle).execute({ conversation_id: randomUUID(), working_dir: target, tool: 'terminal', action: { command: 'echo more >> src/a.txt && cat src/a.txt' } });
    expect(JSON.stringify(wrote)).toContain('copied\\nmore');
    // A working dir that is a link out of the sandbox's folder is not followed.
    await rm(source, { recursive: true });
    await symlink('/etc', source);
    await expect(driver.copyWorkspace(from, third, '/workspace/project')).rejects.toThrow(/leads out of its folder/);
    expect(existsSync(join(dataDir, 'sandboxes', third, 'workspace', 'project', 'passwd'))).toBe(false);
  });

  it('without isolation runs the executor as a plain child in its folder, on the same kind of socket', async () => {
    const driver = newDriver({ isolation: 'none' });
    const id = randomUUID();
    const handle = await driver.provision({ id });
    expect(handle.init).toBeUndefined();
    expect(handle.url).toBe(`unix:${join(dataDir, 'sandboxes', '.sockets', `${id}.sock`)}`);
    expect(await readlink(`/proc/${handle.pid}/cwd`)).toBe(handle.root);
    expect(await new ExecutorClient(handle).health()).toEqual({ status: 'ok' });
  });

  it('puts the sockets of a deep data dir in a private folder of the temporary dir that every process of that data dir finds', async () => {
    // A clone in a deep folder (its folders as git makes them: others may pass).
    const deep = join(dataDir, 'a'.repeat(60), 'workspace');
    await mkdir(deep, { recursive: true, mode: 0o755 });
    await chmod(dataDir, 0o711);
    const driver = newDriver({ dataDir: deep });
    const socketDir = join(tmpdir(), `berth-${createHash('sha256').update(realpathSync(deep)).digest('hex').slice(0, 16)}`);
    try {
      expect(driver.socketDir).toBe(socketDir);
      const handle = await driver.provision({ id: randomUUID() });
      expect(handle.url).toBe(`unix:${join(socketDir, `${handle.id}.sock`)}`);
      expect(Buffer.byteLength(handle.url.slice('unix:'.length))).toBeLessThanOrEqual(107);
      const stat = lstatSync(socketDir);
      expect([stat.isDirectory(), stat.mode & 0o777, stat.uid]).toEqual([true, 0o700, process.getuid!()]);
      expect(await new ExecutorClient(handle).health()).toEqual({ status: 'ok' });
      // Another process of the same data dir (a worker, the next gateway) computes the same folder and takes the executor over.
      const other = newDriver({ dataDir: deep });
      expect(other.socketDir).toBe(socketDir);
      expect(await other.ensureRunning(handle)).toEqual(handle);
      await driver.close();
      await other.close();
      // A folder of that name that is not ours alone is refused, never used.
      await rm(socketDir, { recursive: true });
      await mkdir(socketDir, { mode: 0o755 });
      await chmod(socketDir, 0o755);
      expect(() => newDriver({ dataDir: deep })).toThrow(/not a folder of this user with mode 0700/);
      await rm(socketDir, { recursive: true });
      await symlink(dataDir, socketDir);
      expect(() => newDriver({ dataDir: deep })).toThrow(/not a folder of this user with mode 0700/);
    } finally {
      await rm(socketDir, { recursive: true, force: true });
    }
  });

  it('takes over a running executor from a handle stored by an earlier process, and stops it on close', async () => {
    const first = newDriver();
    const handle = await first.provision({ id: randomUUID() });
    // A gateway restart: the new driver only has the stored handle.
    const second = newDriver();
    expect(await second.status(handle)).toBe('running');
    const taken = await second.ensureRunning(handle);
    expect(taken).toEqual(handle);
    await second.close();
    await until(() => !pidAlive(handle.pid));
  });

  it('restarts from a stored handle whose executor died with the earlier process', async () => {
    const first = newDriver();
    const handle = await first.provision({ id: randomUUID(), env: { PROJECT: 'demo' } });
    await first.close();
    const second = newDriver();
    expect(await second.status(handle)).toBe('stopped');
    const restarted = await second.ensureRunning(handle);
    expect(restarted.pid).not.toBe(handle.pid);
    expect(restarted.token).toBe(handle.token);
    expect(await environOf(restarted.pid)).toMatchObject({ PROJECT: 'demo' });
  });

  it('keeps the new executor of a restart that was queued before the crash was seen', async () => {
    const driver = newDriver();
    const internals = driver as unknown as { serialize(id: string, op: () => Promise<void>): Promise<void>; executors: Map<string, unknown> };
    const handle = await driver.provision({ id: randomUUID() });
    // Hold the sandbox's queue of operations (as a long copy or stop does), queue a restart behind it, then crash the executor.
    let release!: () => void;
    void internals.serialize(handle.id, () => new Promise<void>((resolve) => (release = resolve)));
    const restarting = driver.ensureRunning(handle);
    process.kill(handle.pid, 'SIGKILL');
    // The crash is seen (its cleanup queued behind the restart) before the restart runs.
    await until(() => !internals.executors.has(handle.id), 'the crash to be seen');
    release();
    const restarted = await restarting;
    expect(restarted.pid).not.toBe(handle.pid);
    await internals.serialize(handle.id, async () => undefined);
    // The crash's cleanup has run, after the restart, and left the new executor and its groups alone.
    expect(await driver.status(restarted)).toBe('running');
    expect(await new ExecutorClient(restarted).health()).toEqual({ status: 'ok' });
    expect(await executorsIn(restarted.root)).toEqual([restarted.pid]);
  });

  it("never takes another sandbox's executor for its own when the pid and port were reused", async () => {
    const driver = newDriver();
    const mine = await driver.provision({ id: randomUUID() });
    const other = await driver.provision({ id: randomUUID() });
    await driver.stop(mine);
    // A stale handle whose pid now belongs to the other sandbox's executor.
    const stale: SandboxHandle = { ...mine, pid: other.pid };
    const restarted = await newDriver().ensureRunning(stale);
    expect(restarted.pid).not.toBe(other.pid);
    expect(restarted.url).toBe(mine.url);
    expect(restarted.token).toBe(mine.token);
    expect(await new ExecutorClient(other).health()).toEqual({ status: 'ok' });
    expect(await executorsIn(other.root)).toEqual([other.pid]);
  });

  it('neither reuses nor signals an unrelated process that holds a stale pid', async () => {
    const driver = newDriver();
    const handle = await driver.provision({ id: randomUUID() });
    await driver.stop(handle);
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    strangers.push(stranger);
    const stale: SandboxHandle = { ...handle, pid: stranger.pid! };
    const other = newDriver();
    expect(await other.status(stale)).toBe('stopped');
    await other.stop(stale);
    const unknown = randomUUID();
    await other.destroy({ ...stale, id: unknown, url: `unix:${join(dataDir, 'sandboxes', '.sockets', `${unknown}.sock`)}` });
    const restarted = await other.ensureRunning(stale);
    expect(restarted.pid).not.toBe(stranger.pid);
    expect(pidAlive(stranger.pid!)).toBe(true);
  });

  it('refuses handles it must not act on', async () => {
    const driver = newDriver();
    const handle = await driver.provision({ id: randomUUID() });
    for (const bad of [
      { ...handle, pid: 0 },
      { ...handle, pid: -1 },
      { ...handle, pid: process.pid },
      { ...handle, url: 'http://169.254.169.254:80' },
      { ...handle, url: 'unix:/var/run/docker.sock' },
      { ...handle, url: `unix:${join(dataDir, 'sandboxes', '.sockets', `${randomUUID()}.sock`)}` },
      { ...handle, init: process.pid },
      { ...handle, id: '../..' },
      { ...handle, token: '' },
      { ...handle, driver: 'kubernetes' },
    ]) {
      await expect(driver.destroy(bad as SandboxHandle)).rejects.toThrow();
    }
    expect(await driver.status(handle)).toBe('running');
    expect(existsSync(handle.root)).toBe(true);
  });

  it("reports an executor that fails to start, with its stderr", async () => {
    const script = join(dataDir, 'broken.js');
    await writeFile(script, "console.error('cannot open the workspace'); process.exit(3);");
    const driver = newDriver({ executorEntry: script });
    await expect(driver.provision({ id: randomUUID() })).rejects.toThrow(/code 3.*cannot open the workspace/s);
  });

  it('gives a sandbox asking for egress a way out (slirp4netns) that never reaches the host loopback, and ends it with the sandbox', async () => {
    const host = createServer((_req, res) => res.end('host service')).listen(0, '127.0.0.1');
    await once(host, 'listening');
    try {
      const port = (host.address() as { port: number }).port;
      const driver = newDriver();
      const handle = await driver.provision({ id: randomUUID(), network: 'egress' });
      expect(handle.egress).toEqual(expect.any(Number));
      const run = async (command: string) => (await callExecutor(handle, 'POST', '/api/bash/execute_bash_command', { command, cwd: handle.root, timeout: 20 })).body.stdout as string;
      // An interface with a default route (no traffic is sent: a test sends none beyond loopback).
      const routes = await run('cat /proc/net/route');
      expect(routes).toMatch(/^tap0\s+00000000\s/m);
      expect(await run('cat /etc/resolv.conf')).toContain('nameserver');
      expect(await run(`timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null && echo OPEN || echo CLOSED`)).toContain('CLOSED');
      // Without egress: loopback only.
      const closed = await driver.provision({ id: randomUUID() });
      expect(closed.egress).toBeUndefined();
      const links = (await callExecutor(closed, 'POST', '/api/bash/execute_bash_command', { command: 'cat /proc/net/route; cat /proc/net/dev', cwd: closed.root })).body.stdout;
      expect(links).not.toContain('tap0');
      await driver.destroy(handle);
      await until(() => !pidAlive(handle.egress!));
    } finally {
      host.close();
    }
  });

  it('stops a sandbox whose folder grows over its disk limit', async () => {
    const driver = newDriver({ limits: { diskBytes: 3 * 1024 * 1024 }, diskCheckIntervalMs: 200 });
    const handle = await driver.provision({ id: randomUUID() });
    await callExecutor(handle, 'POST', '/api/bash/execute_bash_command', { command: 'head -c 2000000 /dev/zero > a; head -c 2000000 /dev/zero > b', cwd: handle.root });
    await until(async () => (await driver.status(handle)) === 'error', 'the disk check to stop the sandbox');
    // 'error' shows as soon as the executor stops answering; its processes are gone a moment later.
    await until(async () => !pidAlive(handle.pid), 'the sandbox processes to end');
  });

  describe('warm pool', () => {
    it('hands a pre-started executor to a new sandbox of the id it reserved, in its folder, with its variables, and refills', async () => {
      const driver = newDriver({ warmPoolSize: 2 });
      driver.warm();
      await until(() => driver.warmExecutors === 2);
      const waiting = await pooledIn(dataDir);
      expect(waiting).toHaveLength(2);

      const id = driver.reserveId()!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(driver.warmExecutors).toBe(1);
      const handle = await driver.provision({ id, env: { GREETING: 'warm' } });
      const root = join(dataDir, 'sandboxes', id);
      expect(waiting).toContain(handle.pid);
      expect(handle).toEqual({ driver: 'local', id, url: `unix:${join(dataDir, 'sandboxes', '.sockets', `${id}.sock`)}`, token: expect.any(String), root, pid: handle.pid, init: expect.any(Number) });
      expect(existsSync(join(dataDir, 'sandboxes', '.logs', `${id}.log`))).toBe(true);
      // No longer the pool's: its marker is gone.
      expect(existsSync(join(dataDir, 'sandboxes', '.pool', id))).toBe(false);
      // Its token is the sandbox's: the process's own environment says so (how a later process recognizes it).
      expect((await environOf(handle.pid)).BERTH_SANDBOX_TOKEN).toBe(handle.token);
      expect(await new ExecutorClient(handle).acceptsToken()).toBe(true);
      const res = await callExecutor(handle, 'POST', '/api/bash/execute_bash_command', { command: 'echo "$GREETING" && pwd', cwd: root });
      expect(res.body.stdout).toContain('warm');
      expect(res.body.stdout).toContain(root);
      // Outside the folder stays refused, as for a cold start.
      expect((await callExecutor(handle, 'GET', `/api/file/download?path=${encodeURIComponent('/etc/passwd')}`)).status).toBe(403);

      await until(() => driver.warmExecutors === 2);
      expect(await pooledIn(dataDir)).not.toContain(handle.pid);
      await driver.close();
      await until(async () => (await pooledIn(dataDir)).length === 0 && !pidAlive(handle.pid));
      expect(readdirSync(join(dataDir, 'sandboxes', '.pool'))).toEqual([]);
    });

    it("with warmPoolFill 'demand', starts no executor until the first sandbox is wanted, then fills for the next ones", async () => {
      const driver = newDriver({ warmPoolSize: 2, warmPoolFill: 'demand' });
      driver.warm();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(driver.warmExecutors).toBe(0);
      expect(await pooledIn(dataDir)).toEqual([]);

      // The first one starts cold (nothing was waiting) and sets the pool filling.
      expect(driver.reserveId()).toBeNull();
      const cold = await driver.provision({ id: randomUUID(), env: {} });
      await until(() => driver.warmExecutors === 2);
      const waiting = await pooledIn(dataDir);
      expect(waiting).toHaveLength(2);
      expect(waiting).not.toContain(cold.pid);
      // The next one gets a pooled executor, and the pool refills.
      const warm = await driver.provision({ id: driver.reserveId()!, env: {} });
      expect(waiting).toContain(warm.pid);
      await until(() => driver.warmExecutors === 2);
    });

    it('a pooled isolated sandbox runs as its own uid, in its own folder at its path, with its env, like a cold one', async () => {
      const driver = newDriver({ warmPoolSize: 1 });
      driver.warm();
      await until(() => driver.warmExecutors === 1);
      const warm = await driver.provision({ id: driver.reserveId()!, env: { WHO: 'pooled' } });
      const cold = await driver.provision({ id: randomUUID(), env: { WHO: 'cold' } });
      const run = async (handle: LocalSandboxHandle) =>
        (await callExecutor(handle, 'POST', '/api/bash/execute_bash_command', { command: 'id -u; pwd; echo "$WHO"; ls -ld . | cut -d" " -f1', cwd: handle.root })).body.stdout.trim().split('\n');
      const [warmUid, warmCwd, warmWho, warmMode] = await run(warm);
      const [coldUid, coldCwd, coldWho] = await run(cold);
      expect([warmCwd, warmWho, warmMode]).toEqual([warm.root, 'pooled', 'drwx------']);
      expect([coldCwd, coldWho]).toEqual([cold.root, 'cold']);
      // On the host: a uid of its own (not ours, not the other sandbox's) that owns its folder, as seen from inside.
      const hostUid = await uidOf(warm.pid);
      expect(hostUid).not.toBe(process.getuid!());
      expect(hostUid).not.toBe(await uidOf(cold.pid));
      expect(statSync(warm.root).uid).toBe(hostUid);
      if (process.getuid!() === 0) {
        expect(Number(warmUid)).toBe(hostUid);
        expect(warmUid).not.toBe(coldUid);
      }
      // The other sandbox's folder is out of its reach.
      const peek = await callExecutor(warm, 'POST', '/api/bash/execute_bash_command', { command: `ls ${cold.root} 2>&1 || echo unreachable`, cwd: warm.root });
      expect(peek.body.stdout).toMatch(/unreachable|No such file/);
    });

    it('starts cold for an id it did not reserve, for another network, and when the pooled executor died while waiting; a claimed one that dies is crashed', async () => {
      const driver = newDriver({ warmPoolSize: 1 });
      driver.warm();
      await until(() => driver.warmExecutors === 1);
      const [pooled] = await pooledIn(dataDir);
      const unreserved = await driver.provision({ id: randomUUID() });
      expect(unreserved.pid).not.toBe(pooled);
      // A sandbox asking another network than the pool's gets no reservation, and a cold start.
      expect(driver.reserveId('egress')).toBeNull();

      const [doomed] = await pooledIn(dataDir);
      const id = driver.reserveId()!;
      process.kill(doomed, 'SIGKILL');
      await until(() => !pidAlive(doomed));
      const handle = await driver.provision({ id, env: { KEPT: 'yes' } });
      expect(handle.pid).not.toBe(doomed);
      expect(await new ExecutorClient(handle).health()).toEqual({ status: 'ok' });

      await until(() => driver.warmExecutors === 1);
      const second = await driver.provision({ id: driver.reserveId()!, env: { KEPT: 'yes' } });
      process.kill(second.pid, 'SIGKILL');
      await until(() => !pidAlive(second.pid));
      expect(await driver.status(second)).toBe('error');
      const restarted = await driver.ensureRunning(second);
      expect(restarted.token).toBe(second.token);
      expect(await environOf(restarted.pid)).toMatchObject({ KEPT: 'yes', BERTH_SANDBOX_ROOT: second.root });
    });

    it('discards a reservation not provisioned in time, and leaves the folder to another process that provisioned its id', async () => {
      const driver = newDriver({ warmPoolSize: 2, reservationMs: 500 });
      driver.warm();
      await until(() => driver.warmExecutors === 2);
      const [forgotten, elsewhere] = [driver.reserveId()!, driver.reserveId()!];
      const pooled = await pooledIn(dataDir);
      // Another process sharing the data dir provisions the second id (its row was made here, its first call went there).
      const other = newDriver();
      const there = await other.provision({ id: elsewhere, env: { WHERE: 'there' } });
      expect(pooled).not.toContain(there.pid);
      await until(() => pooled.every((pid) => !pidAlive(pid)) && !existsSync(join(dataDir, 'sandboxes', forgotten)), 'both reservations to lapse');
      // The other process's sandbox keeps its folder, its cgroups and its executor.
      expect(existsSync(there.root)).toBe(true);
      expect(await other.status(there)).toBe('running');
      const res = await callExecutor(there, 'POST', '/api/bash/execute_bash_command', { command: 'echo "$WHERE"', cwd: there.root });
      expect(res.body.stdout).toContain('there');
    });

    it('pooled executors end with the process that started them (never adopted), and the next start removes their folders', async () => {
      const script = `const { LocalSandboxDriver } = require(${JSON.stringify(join(process.cwd(), 'dist/libs/sandbox/src/local-driver.js'))});
        const driver = new LocalSandboxDriver({ dataDir: ${JSON.stringify(dataDir)}, warmPoolSize: 2 });
        driver.warm();
        setInterval(() => driver.warmExecutors === 2 && console.log('warm'), 100);`;
      const parent = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
      strangers.push(parent);
      await new Promise((resolve) => parent.stdout!.once('data', resolve));
      const pooled = await pooledIn(dataDir);
      expect(pooled).toHaveLength(2);
      const ids = readdirSync(join(dataDir, 'sandboxes', '.pool'));
      expect(ids).toHaveLength(2);
      parent.kill('SIGKILL');
      await until(() => pooled.every((pid) => !pidAlive(pid)), 'the pooled executors to end with their process');
      for (const id of ids) expect(existsSync(join(dataDir, 'sandboxes', id))).toBe(true);
      const next = newDriver();
      next.warm();
      // A swept folder is moved aside into .pool, then removed: the sweep is over when .pool is empty.
      await until(() => ids.every((id) => !existsSync(join(dataDir, 'sandboxes', id))) && readdirSync(join(dataDir, 'sandboxes', '.pool')).length === 0, 'the sweep');
      expect(readdirSync(join(dataDir, 'sandboxes', '.pool'))).toEqual([]);
    });

    it('a dormant executor answers health and, with its token, one init; nothing else', async () => {
      const token = 'dormant-token';
      const child = spawn(process.execPath, [join(process.cwd(), 'dist/apps/executor/src/main.js')], {
        cwd: dataDir,
        env: { PATH: process.env.PATH, BERTH_EXECUTOR_DORMANT: '1', BERTH_SANDBOX_TOKEN: token, BERTH_EXECUTOR_PORT: '0' },
        // Its stdin is the driver's pipe: it ends when that closes, while dormant.
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      strangers.push(child);
      const port = await new Promise<number>((resolve) => child.stdout!.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()).port)));
      const base = `http://127.0.0.1:${port}`;
      const init = (body: unknown, key = token) =>
        fetch(`${base}/api/init`, { method: 'POST', headers: { 'x-sandbox-token': key, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const root = join(dataDir, 'claimed');

      expect((await fetch(`${base}/health`)).status).toBe(200);
      expect((await fetch(`${base}/api/file/home`, { headers: { 'x-sandbox-token': token } })).status).toBe(503);
      expect((await init({ root }, 'wrong')).status).toBe(401);
      expect((await init({ root: 'relative' })).status).toBe(422);
      expect((await init({ root, env: { A: 1 } })).status).toBe(422);
      expect((await init({ root, env: { GREETING: 'hi' } })).status).toBe(200);
      const home = await fetch(`${base}/api/file/home`, { headers: { 'x-sandbox-token': token } });
      expect(((await home.json()) as { home: string }).home).toBe(root);
      expect((await init({ root })).status).toBe(404);
      // Given a sandbox, it no longer ends with its stdin (a driver that exits leaves it to the next one).
      child.stdin!.end();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await fetch(`${base}/health`)).status).toBe(200);
    });
  });

  it('kills an executor that never reports ready', async () => {
    const script = join(dataDir, 'silent.js');
    await writeFile(script, "console.error('still thinking'); setInterval(() => {}, 1000);");
    const driver = newDriver({ executorEntry: script, startTimeoutMs: 3000 });
    const id = randomUUID();
    await expect(driver.provision({ id })).rejects.toThrow(/no ready line.*still thinking/s);
    expect(await executorsIn(join(dataDir, 'sandboxes', id))).toEqual([]);
  });

  it('SandboxModule provides the local driver from the config and stops its executors at shutdown', async () => {
    const moduleRef = await Test.createTestingModule({
      // The manager beside the driver needs storage and the secret vault: the embedded ones here.
      imports: [
        ConfigModule.forRoot({ dataDir, databaseUrl: null, secretKey: 'spec-key' } as BerthConfig),
        PersistenceModule.forRoot(),
        CryptoModule.forRoot(),
        QueueModule.forRoot(),
        BusModule.forRoot(),
        SandboxModule.forRoot(),
      ],
    }).compile();
    const driver = moduleRef.get(SandboxDriver);
    expect(driver).toBeInstanceOf(LocalSandboxDriver);
    expect(moduleRef.get(SandboxManager).driverKind).toBe('local');
    const handle = (await driver.provision({ id: randomUUID() })) as LocalSandboxHandle;
    expect(handle.root.startsWith(join(dataDir, 'sandboxes'))).toBe(true);
    await moduleRef.close();
    await until(() => !pidAlive(handle.pid));
  });
});
