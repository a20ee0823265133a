import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { CoreV1Api } from '@kubernetes/client-node';
import { Client } from 'pg';
import { loadConfig } from '@berth/config';
import { SecretVault } from '@berth/crypto';
import { ConversationRepository, Database, DEFAULT_TENANT_ID, SandboxRepository, tenantScope } from '@berth/persistence';
import { InProcessRunLock } from '@berth/queue';
import { FakeKube, until } from '@berth/testing';
import { KubernetesSandboxDriver } from './kubernetes/kubernetes-driver';
import { KubernetesSandboxHandle } from './sandbox-driver';
import { SandboxManager } from './sandbox-manager';
import { LOST_REASONS, SandboxReconciler } from './sandbox-reconciler';

/**
 * The reconciler with the kubernetes driver on FakeKube, against a PostgreSQL database of its own
 * (another suite's kubernetes rows are not this cluster's). Needs the built executor: the fake's pods run it.
 */

const NAMESPACE = 'sandboxes';
const IMAGE = 'registry.example/berth-executor:1';
const ADMIN_URL = process.env.BERTH_TEST_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const DB_NAME = `berth_reconcile_${randomBytes(6).toString('hex')}`;
const scope = tenantScope(DEFAULT_TENANT_ID);

describe('SandboxReconciler with the kubernetes driver (on FakeKube)', () => {
  let dataDir: string;
  let fake: FakeKube;
  let db: Database;
  let rows: SandboxRepository;
  let driver: KubernetesSandboxDriver;
  let manager: SandboxManager;
  let reconciler: SandboxReconciler;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    const admin = new Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${DB_NAME}"`);
    await admin.end();
    const url = new URL(ADMIN_URL);
    url.pathname = `/${DB_NAME}`;
    dataDir = mkdtempSync(join(tmpdir(), 'berth-reconcile-kube-'));
    fake = await FakeKube.start({ dataDir });
    const config = loadConfig(
      { BERTH_DATA_DIR: dataDir, BERTH_SANDBOX_DRIVER: 'kubernetes', BERTH_K8S_EXECUTOR_IMAGE: IMAGE, BERTH_K8S_NAMESPACE: NAMESPACE, BERTH_K8S_READY_TIMEOUT_MS: '30000', BERTH_SANDBOX_RECONCILE_MS: '0' },
      [],
    );
    db = new Database({ databaseUrl: url.toString(), dataDir, poolSize: 4 });
    await db.ready;
    rows = new SandboxRepository(db);
    driver = new KubernetesSandboxDriver({ config: config.kubernetes!, defaultNetwork: 'none', kubeConfig: fake.kubeConfig() });
    manager = new SandboxManager(rows, new ConversationRepository(db), driver, new SecretVault('reconcile-kube-spec', dataDir));
    reconciler = new SandboxReconciler(rows, manager, driver, new InProcessRunLock(), config);
  });

  afterAll(async () => {
    await driver?.close();
    await fake?.close();
    await db?.close();
    const admin = new Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${DB_NAME}" WITH (FORCE)`);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const started = async () => {
    const { id } = await manager.create(scope);
    return { id, handle: (await manager.ensureRunning(scope, id)) as KubernetesSandboxHandle };
  };

  it('records a crash-looping pod as error with its reason, and a pod deleted behind its back as lost', async () => {
    const looping = await started();
    const deleted = await started();
    await fake.crashLoop(looping.handle.pod, NAMESPACE);
    await fake.kubeConfig().makeApiClient(CoreV1Api).deleteNamespacedPod({ name: deleted.handle.pod, namespace: NAMESPACE });

    await until(async () => (await driver.inventory()).some((r) => r.sandboxId === looping.id && r.state === 'error'), 'the crash loop to show', 20_000);

    const done = await reconciler.reconcileOnce();
    expect(done.failed).toEqual([looping.id]);
    expect(done.lost).toEqual([deleted.id]);
    expect(await rows.find(scope, looping.id)).toMatchObject({ status: 'error', statusReason: 'CrashLoopBackOff', desiredState: 'running' });
    // Its Secret and volume are still there: the executor is what is missing.
    expect(await rows.find(scope, deleted.id)).toMatchObject({ status: 'lost', statusReason: LOST_REASONS.notRunning });
    for (const id of [looping.id, deleted.id]) await manager.destroy(scope, (await rows.find(scope, id))!);
  });

  it('records a start whose image cannot be pulled as error ImagePullBackOff', async () => {
    fake.failPulls(IMAGE);
    try {
      const { id } = await manager.create(scope);
      await expect(manager.ensureRunning(scope, id)).rejects.toThrow(/Back-off pulling image/);
      expect(await rows.find(scope, id)).toMatchObject({ status: 'error', statusReason: 'ImagePullBackOff' });
      await manager.destroy(scope, (await rows.find(scope, id))!);
    } finally {
      fake.failPulls(IMAGE, false);
    }
  });

  it("removes a sandbox's pod, Secret, volume and policy when no row names it", async () => {
    const orphan = await driver.provision({ id: randomUUID() });
    const done = await reconciler.reconcileOnce();
    expect(done.orphans).toEqual([orphan.id]);
    for (const resource of ['pods', 'secrets', 'persistentvolumeclaims', 'networkpolicies']) expect(fake.objects(resource, NAMESPACE)).toEqual([]);
  });
});
