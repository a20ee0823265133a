import { Database } from '@berth/persistence';
import { LocalSandboxHandle } from '@berth/sandbox';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './support/processes';
import { useServer } from './support/server';

/**
 * Sandboxes as a security boundary (the local driver with bubblewrap, the default): code run
 * through the real API (`POST /api/sandboxes`, then `/sandboxes/{id}/api/bash/execute_bash_command`)
 * is checked from inside and from the host. PostgreSQL storage: the server holds DATABASE_URL and
 * REDIS_URL, which no sandbox may learn or use.
 */

const KEY = 'isolation-key';
const PROCESSES = 100;
const FILE_SIZE_MB = 4;

describe('sandbox isolation (bwrap, postgres)', () => {
  const ctx = useServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_SANDBOX_PROCESSES: String(PROCESSES), BERTH_SANDBOX_FILE_SIZE_MB: String(FILE_SIZE_MB) }, KEY);
  const call = ctx.call;

  async function newSandbox(): Promise<{ id: string; handle: LocalSandboxHandle }> {
    const created = await call('POST', '/api/sandboxes', {});
    expect(created.status).toBe(201);
    const row = await ctx.server.app.get(Database).prisma.sandbox.findUniqueOrThrow({ where: { id: created.body.id } });
    return { id: created.body.id, handle: row.handle as unknown as LocalSandboxHandle };
  }

  async function sh(sandboxId: string, command: string, timeout = 30): Promise<{ stdout: string; exit: number }> {
    const res = await call('POST', `/sandboxes/${sandboxId}/api/bash/execute_bash_command`, { command, timeout });
    if (res.status !== 200) throw new Error(`execute answered ${res.status}: ${JSON.stringify(res.body)}`);
    return { stdout: `${res.body.stdout ?? ''}${res.body.stderr ?? ''}`, exit: res.body.exit_code };
  }

  /** Whether a TCP connect from inside the sandbox succeeds (bash's /dev/tcp; 3 s at most). */
  async function reachable(sandboxId: string, host: string, port: number): Promise<boolean> {
    const out = await sh(sandboxId, `timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null && echo OPEN || echo CLOSED`);
    return out.stdout.includes('OPEN');
  }

  let a: { id: string; handle: LocalSandboxHandle };
  let b: { id: string; handle: LocalSandboxHandle };

  beforeAll(async () => {
    a = await newSandbox();
    b = await newSandbox();
  });

  it('runs sandbox code as an unprivileged uid of its own on the host, not root', async () => {
    const inside = await sh(a.id, 'id -u; id -g');
    const [uid, gid] = inside.stdout.trim().split('\n').map(Number);
    expect(uid).not.toBe(0);
    expect(gid).not.toBe(0);
    // From the host: the executor and the shell it started carry that uid.
    for (const pid of [a.handle.pid, a.handle.init!]) {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const hostUid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
      expect(hostUid).toBe(uid);
      expect(hostUid).toBeGreaterThanOrEqual(100_000);
    }
    const other = Number((await sh(b.id, 'id -u')).stdout.trim());
    expect(other).not.toBe(uid);
    // No capability is left, and no new user namespace can be made to get some.
    expect((await sh(a.id, 'grep CapEff /proc/self/status')).stdout).toMatch(/CapEff:\s+0+\s/);
    expect((await sh(a.id, 'unshare -U true 2>&1; echo "exit=$?"')).stdout).not.toContain('exit=0');
  });

  it('reads no secret of the server: not its environment, its data dir, its key or its database', async () => {
    const dataDir = ctx.server.dataDir;
    // A world-readable file in the data dir: only the mount namespace keeps it out of reach.
    writeFileSync(join(dataDir, 'canary.txt'), 'CANARY-SECRET', { mode: 0o644 });
    const probe = await sh(
      a.id,
      [
        `cat /proc/${process.pid}/environ 2>&1`,
        `cat /proc/1/environ 2>&1 | tr '\\0' '\\n' | grep -c BERTH_SANDBOX_TOKEN`,
        `cat ${join(dataDir, 'canary.txt')} 2>&1`,
        `cat ${join(dataDir, '.secret_key')} 2>&1`,
        `ls ${dataDir} 2>&1`,
        `ls ${join(dataDir, 'sandboxes')} 2>&1`,
        `ls ${join(dataDir, 'sandboxes', '.sockets')} 2>&1`,
        `ls /work /root /home 2>&1`,
        `env`,
        `cat /etc/shadow 2>&1`,
      ].join('; echo; '),
    );
    expect(probe.stdout).not.toContain('CANARY-SECRET');
    expect(probe.stdout).not.toContain('test-secret-key');
    expect(probe.stdout).not.toContain(process.env.BERTH_TEST_DATABASE_URL!);
    expect(probe.stdout).not.toContain('postgres');
    expect(probe.stdout).not.toContain(b.id);
    expect(probe.stdout).not.toContain(b.handle.token);
    expect(probe.stdout).not.toMatch(/DATABASE_URL|REDIS_URL|OH_SECRET_KEY/);
    // The gateway's process does not exist in the sandbox's pid namespace at all.
    expect(probe.stdout).toMatch(new RegExp(`/proc/${process.pid}/environ: No such file or directory`));
  });

  it('reaches neither PostgreSQL, Redis nor the gateway on the host loopback', async () => {
    const gatewayPort = Number(new URL(ctx.server.url).port);
    expect(await reachable(a.id, '127.0.0.1', 5432)).toBe(false);
    expect(await reachable(a.id, '127.0.0.1', 6379)).toBe(false);
    expect(await reachable(a.id, '127.0.0.1', gatewayPort)).toBe(false);
    // Its network is its own loopback and nothing else.
    const links = (await sh(a.id, 'cat /proc/net/dev')).stdout;
    expect(links).toContain('lo:');
    expect(links).not.toMatch(/eth\d|tap\d|ens\d/);
  });

  it("sees no other sandbox's folder or processes", async () => {
    await sh(b.id, 'echo b-private > b-file.txt');
    const look = await sh(a.id, `ls ${b.handle.root} 2>&1; cat ${join(b.handle.root, 'b-file.txt')} 2>&1; ls ${join(ctx.server.dataDir, 'sandboxes')}; ps -eo pid,args`);
    expect(look.stdout).not.toContain('b-private');
    expect(look.stdout).toContain('No such file or directory');
    // Its own folder is all there is under sandboxes/.
    expect(look.stdout).toContain(a.id);
    expect(look.stdout.split('\n').filter((line) => line.includes(b.id))).toEqual([`ls: cannot access '${b.handle.root}': No such file or directory`, `cat: ${join(b.handle.root, 'b-file.txt')}: No such file or directory`]);
    // Processes: its jail's init, its executor, its shells: no executor of another sandbox, nothing of the host.
    expect(look.stdout).not.toContain('jest');
    expect(look.stdout.match(/dist\/apps\/executor\/src\/main\.js/g)!.length).toBeLessThanOrEqual(2);
  });

  it('shows /workspace as its own folder: the virtual working dir of a command and of the file API agree, and a link planted there leads nowhere new', async () => {
    const wrote = await sh(a.id, 'mkdir -p /workspace/project && echo virtual-$((3*3)) > /workspace/project/v.txt && cat ' + join(a.handle.root, 'workspace/project/v.txt'));
    expect(wrote).toEqual({ stdout: 'virtual-9\n', exit: 0 });
    const read = await call('GET', `/sandboxes/${a.id}/api/file/download?path=${encodeURIComponent(join(a.handle.root, 'workspace/project/v.txt'))}`);
    expect(read.status).toBe(200);
    expect(String(read.body)).toContain('virtual-9');
    // Sandbox code swaps its workspace folder for a link to the host's /etc: inside, /workspace is
    // then the jail's own /etc (an allow-list), never the host's.
    const planted = await sh(a.id, `mv ${join(a.handle.root, 'workspace')} ${join(a.handle.root, 'ws-old')} && ln -s /etc ${join(a.handle.root, 'workspace')} && ls /workspace/ && cat /workspace/shadow 2>&1; echo x > /workspace/berth-probe 2>&1`);
    expect(planted.stdout).toContain('No such file or directory');
    expect(planted.stdout).not.toMatch(/root:[^:]*:\d+:/);
    expect(existsSync('/etc/berth-probe')).toBe(false);
    await sh(a.id, `rm ${join(a.handle.root, 'workspace')} && mv ${join(a.handle.root, 'ws-old')} ${join(a.handle.root, 'workspace')}`);
  });

  it('stops a file written past the file-size limit (yes > file)', async () => {
    const out = await sh(a.id, 'yes > big.txt; echo "exit=$?"; stat -c size=%s big.txt', 60);
    // SIGXFSZ: 128 + 25.
    expect(out.stdout).toContain('exit=153');
    const size = Number(/^size=(\d+)$/m.exec(out.stdout)?.[1]);
    expect(size).toBe(FILE_SIZE_MB * 1024 * 1024);
    await sh(a.id, 'rm big.txt');
  });

  it('contains a fork bomb: the server and another sandbox keep answering, and deleting the sandbox ends it', async () => {
    const bomb = await newSandbox();
    await sh(bomb.id, `nohup bash -c 'bomb() { bomb | bomb & }; bomb' >/dev/null 2>&1 &`, 10);
    // It has hit its process limit.
    const cgroup = `/sys/fs/cgroup/pids/berth-${bomb.id}`;
    expect(await eventually(() => Number(readFileSync(join(cgroup, 'pids.current'), 'utf8')) >= PROCESSES - 5, 15_000)).toBe(true);
    expect(Number(readFileSync(join(cgroup, 'pids.current'), 'utf8'))).toBeLessThanOrEqual(PROCESSES);
    // Everyone else is fine.
    expect((await call('GET', '/health')).status).toBe(200);
    expect((await sh(b.id, 'echo still-here')).stdout).toContain('still-here');
    // Deleting it ends every process in it (its whole pid namespace), and its cgroup.
    expect((await call('DELETE', `/api/sandboxes/${bomb.id}`)).status).toBe(200);
    expect(await eventually(() => !readdirSafe('/sys/fs/cgroup/pids').includes(`berth-${bomb.id}`), 15_000)).toBe(true);
    const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${b.handle.pid}/status`, 'utf8'))![1]);
    expect(uid).toBeGreaterThan(0);
  });
});

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
