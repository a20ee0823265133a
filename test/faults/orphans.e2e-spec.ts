import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BerthProcess, FaultLab } from '../support/faults';
import { alive, eventually, processesUnder } from '../support/processes';
import { api } from '../support/server';

const KEY = 'orphan-key';

describe('kill -9 of a gateway with a warm pool (executors as its children)', () => {
  const lab = new FaultLab();
  beforeAll(async () => {
    await lab.startPostgres();
    await lab.startRedis();
  });
  afterAll(() => lab.close());

  const gatewayWithPool = () => lab.startGateway({ env: { OH_SESSION_API_KEYS_0: KEY, BERTH_WARM_POOL_SIZE: '2' } });
  /** Executors by the sandbox folder they work in. */
  const executors = () => processesUnder(`${lab.dataDir}/sandboxes`).map((p) => ({ pid: p.pid, sandbox: basename(p.cwd) }));

  it('leaves no pooled executor running; the sandbox executor is adopted by the next gateway', async () => {
    const first: BerthProcess = await gatewayWithPool();
    const created = await api(first, 'POST', '/api/sandboxes', { key: KEY, body: {} });
    expect(created.status).toBe(201);
    const sandbox = created.body.id as string;
    expect((await api(first, 'POST', `/sandboxes/${sandbox}/api/bash/execute_bash_command`, { key: KEY, body: { command: 'echo one' } })).body.stdout).toContain('one');
    // The pool refilled: two pooled executors besides the sandbox's own.
    expect(await eventually(() => new Set(executors().filter((e) => e.sandbox !== sandbox).map((e) => e.sandbox)).size === 2, 30_000)).toBe(true);
    const pooled = executors().filter((e) => e.sandbox !== sandbox);
    const own = executors().filter((e) => e.sandbox === sandbox).map((e) => e.pid);
    expect(own.length).toBeGreaterThan(0);

    await first.kill();
    // Pooled executors end with the process that started them (their stdin pipe closes).
    expect(await eventually(() => pooled.every((e) => !alive(e.pid)), 15_000)).toBe(true);
    // The sandbox's executor outlives it, to be adopted.
    expect(own.every(alive)).toBe(true);

    const second = await gatewayWithPool();
    expect((await api(second, 'POST', `/sandboxes/${sandbox}/api/bash/execute_bash_command`, { key: KEY, body: { command: 'echo two' } })).body.stdout).toContain('two');
    // Adopted, not started again: the same processes serve it.
    expect(executors().filter((e) => e.sandbox === sandbox).map((e) => e.pid).sort()).toEqual([...own].sort());
    // The dead gateway's pool folders are swept at the next start.
    expect(await eventually(() => pooled.every((e) => !existsSync(join(lab.dataDir, 'sandboxes', e.sandbox))), 15_000)).toBe(true);
    expect(existsSync(join(lab.dataDir, 'sandboxes', sandbox))).toBe(true);
    await second.stop();
  });
});
