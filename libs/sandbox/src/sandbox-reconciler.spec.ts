import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test, TestingModule } from '@nestjs/testing';
import { BusModule } from '@berth/bus';
import { ConfigModule, loadConfig } from '@berth/config';
import { CryptoModule, SecretVault } from '@berth/crypto';
import { ConversationRepository, Database, DEFAULT_TENANT_ID, PersistenceModule, SandboxRepository, tenantScope } from '@berth/persistence';
import type { SandboxRow } from '@berth/persistence';
import { QueueModule } from '@berth/queue';
import { until } from '@berth/testing';
import { ExecutorClient } from './executor-client';
import { pidAlive } from './isolation';
import { LocalSandboxHandle, SandboxDriver } from './sandbox-driver';
import { SandboxManager } from './sandbox-manager';
import { SandboxModule } from './sandbox.module';
import { LOST_REASONS, SandboxReconciler, START_GRACE_MS } from './sandbox-reconciler';

/** Real PostgreSQL, Redis and local driver (bubblewrap); needs the built executor (`npm test` builds first). */


const scope = tenantScope(DEFAULT_TENANT_ID);

describe('SandboxReconciler with the local driver', () => {
  let dataDir: string;
  let moduleRef: TestingModule;
  let manager: SandboxManager;
  let rows: SandboxRepository;
  let driver: SandboxDriver;
  let reconciler: SandboxReconciler;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-reconciler-'));
    const config = loadConfig(
      {
        BERTH_DATA_DIR: dataDir,
        DATABASE_URL: process.env.BERTH_TEST_DATABASE_URL,
        REDIS_URL: process.env.BERTH_TEST_REDIS_URL,
        BERTH_QUEUE_PREFIX: `berth-test-${randomUUID()}`,
        OH_SECRET_KEY: 'reconciler-spec-key',
        // Passes are run by the tests, one at a time.
        BERTH_SANDBOX_RECONCILE_MS: '0',
        BERTH_REAPER_INTERVAL_MS: '0',
        BERTH_WARM_POOL_SIZE: '0',
        LOG_LEVEL: 'error',
      },
      [],
    );
    moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), PersistenceModule.forRoot(), CryptoModule.forRoot(), QueueModule.forRoot(), BusModule.forRoot(), SandboxModule.forRoot()],
    }).compile();
    await moduleRef.init();
    await moduleRef.get(Database).ready;
    manager = moduleRef.get(SandboxManager);
    rows = moduleRef.get(SandboxRepository);
    driver = moduleRef.get(SandboxDriver);
    reconciler = moduleRef.get(SandboxReconciler);
  });

  afterAll(async () => {
    await moduleRef?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const row = async (id: string): Promise<SandboxRow | null> => rows.find(scope, id);
  const started = async (): Promise<{ id: string; handle: LocalSandboxHandle }> => {
    const { id } = await manager.create(scope);
    return { id, handle: (await manager.ensureRunning(scope, id)) as LocalSandboxHandle };
  };
  const answers = (handle: LocalSandboxHandle) =>
    new ExecutorClient(handle, { timeoutMs: 2000 })
      .health()
      .then(() => true)
      .catch(() => false);

  it('removes what the data dir holds for no row — a running executor, a bare folder — and leaves the sandboxes with rows', async () => {
    const kept = await started();
    const orphan = (await driver.provision({ id: randomUUID() })) as LocalSandboxHandle;
    const folder = randomUUID();
    mkdirSync(join(dataDir, 'sandboxes', folder));
    writeFileSync(join(dataDir, 'sandboxes', folder, 'left.txt'), 'by a crash');

    const done = await reconciler.reconcileOnce();
    expect(done.orphans.sort()).toEqual([orphan.id, folder].sort());
    expect(pidAlive(orphan.pid)).toBe(false);
    expect(existsSync(orphan.root)).toBe(false);
    expect(existsSync(join(dataDir, 'sandboxes', folder))).toBe(false);
    expect(await answers(kept.handle)).toBe(true);
    expect((await reconciler.reconcileOnce()).orphans).toEqual([]);
    await manager.destroy(scope, (await row(kept.id))!);
  });

  it('marks a running sandbox whose executor was killed lost, with a reason; the next use starts it again', async () => {
    const { id, handle } = await started();
    for (const pid of [handle.pid, handle.init].filter((p): p is number => p !== undefined)) process.kill(pid, 'SIGKILL');
    await until(() => !pidAlive(handle.pid), 'the executor to die', 5000);

    const done = await reconciler.reconcileOnce();
    expect(done.lost).toEqual([id]);
    expect(await row(id)).toMatchObject({ status: 'lost', desiredState: 'running', statusReason: LOST_REASONS.notRunning });

    // A manager that verified the dead executor a moment ago still trusts it: a fresh one (another replica) starts it again.
    const other = new SandboxManager(rows, moduleRef.get(ConversationRepository), driver, moduleRef.get(SecretVault));
    const restarted = (await other.ensureRunning(scope, id)) as LocalSandboxHandle;
    expect(restarted.pid).not.toBe(handle.pid);
    expect(await answers(restarted)).toBe(true);
    expect(await row(id)).toMatchObject({ status: 'running', statusReason: null });
    expect((await reconciler.reconcileOnce()).lost).toEqual([]);
    await manager.destroy(scope, (await row(id))!);
  });

  it('marks a start that never finished lost (freeing its place in the quota), and leaves a recent one to its start', async () => {
    const interrupted = await manager.create(scope);
    const recent = await manager.create(scope);
    await moduleRef.get(Database).prisma.sandbox.update({ where: { id: interrupted.id }, data: { updatedAt: new Date(Date.now() - START_GRACE_MS - 60_000) } });

    const done = await reconciler.reconcileOnce();
    expect(done.lost).toEqual([interrupted.id]);
    expect(await row(interrupted.id)).toMatchObject({ status: 'lost', statusReason: LOST_REASONS.startInterrupted });
    expect(await row(recent.id)).toMatchObject({ status: 'starting' });
    expect(await answers((await manager.ensureRunning(scope, interrupted.id)) as LocalSandboxHandle)).toBe(true);
    for (const id of [interrupted.id, recent.id]) await manager.destroy(scope, (await row(id))!);
  });

  it('stops a sandbox wanted stopped that still runs, and finishes a delete that stopped half way', async () => {
    const stopped = await started();
    // A pause that crashed after writing its wish: desired stopped, the executor still up.
    await rows.changeState(scope, stopped.id, () => ({ desiredState: 'stopped' }));
    const deleted = await started();
    await rows.changeState(scope, deleted.id, () => ({ desiredState: 'destroyed' }));

    const done = await reconciler.reconcileOnce();
    expect(done.stopped).toEqual([stopped.id]);
    expect(done.destroyed).toEqual([deleted.id]);
    await until(() => !pidAlive(stopped.handle.pid), 'the stopped executor to end', 5000);
    expect(await row(stopped.id)).toMatchObject({ status: 'stopped', desiredState: 'stopped' });
    expect(existsSync(stopped.handle.root)).toBe(true);
    expect(await row(deleted.id)).toBeNull();
    expect(pidAlive(deleted.handle.pid)).toBe(false);
    expect(existsSync(deleted.handle.root)).toBe(false);
    await manager.destroy(scope, (await row(stopped.id))!);
  });

  it('never overwrites a change it did not see: a stale compare-and-set re-reads and decides again', async () => {
    const { id } = await manager.create(scope);
    const stale = (await row(id))!;
    await rows.changeState(scope, id, () => ({ statusReason: 'written meanwhile' }));
    const seen: number[] = [];
    const result = await rows.changeState(
      scope,
      id,
      (current) => {
        seen.push(current.stateVersion);
        return { desiredState: 'stopped' };
      },
      stale,
    );
    expect(seen).toEqual([stale.stateVersion, stale.stateVersion + 1]);
    expect(result.applied).toBe(true);
    expect(result.row).toMatchObject({ desiredState: 'stopped', statusReason: 'written meanwhile', stateVersion: stale.stateVersion + 2 });
    await rows.remove(scope, id);
  });

  it('keeps desired and observed state true when two managers pause and start the same sandbox at once', async () => {
    const vault = moduleRef.get(SecretVault);
    const conversations = moduleRef.get(ConversationRepository);
    const { id } = await started();
    for (let round = 0; round < 4; round++) {
      // Two replicas (fresh managers: no handle cached), each acting on what it read.
      const [a, b] = [new SandboxManager(rows, conversations, driver, vault), new SandboxManager(rows, conversations, driver, vault)];
      const before = (await row(id))!;
      await Promise.allSettled([a.pause(scope, before), b.ensureRunning(scope, id)]);
      // Whichever wish came last is the desired state; what neither manager could record (its
      // executor stopped under a start that had just recorded it running), the reconciler finds.
      const done = await reconciler.reconcileOnce();
      const after = (await row(id))!;
      expect(after.stateVersion).toBeGreaterThan(before.stateVersion);
      const handle = manager.handleOf(after) as LocalSandboxHandle;
      if (after.desiredState === 'running') {
        expect(['running', 'lost']).toContain(after.status);
        expect(await answers(handle)).toBe(after.status === 'running');
        expect(done.lost).toEqual(after.status === 'lost' ? [id] : []);
      } else {
        expect(after).toMatchObject({ desiredState: 'stopped', status: 'paused' });
        await until(async () => !(await answers(handle)), 'the paused executor to end', 5000);
      }
      expect([...done.stopped, ...done.orphans]).toEqual([]);
    }
    await manager.destroy(scope, (await row(id))!);
  });
});
