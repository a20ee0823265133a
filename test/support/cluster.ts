import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKube } from '@berth/testing';

export interface TestCluster {
  fake: FakeKube;
  namespace: string;
  /** The settings that put a Berth server's sandboxes on this cluster (BERTH_SANDBOX_DRIVER=kubernetes, KUBECONFIG, …). */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** A FakeKube for an end-to-end suite, and the environment of a Berth server whose sandboxes are its pods. */
export async function startCluster(namespace = 'sandboxes', extra: Record<string, string> = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cluster-'));
  // The pods' users (uid 10001) reach the cluster's folders through it.
  chmodSync(dir, 0o711);
  const fake = await FakeKube.start({ dataDir: join(dir, 'cluster') });
  const kubeconfig = join(dir, 'kubeconfig');
  fake.writeKubeconfig(kubeconfig);
  return {
    fake,
    namespace,
    env: {
      BERTH_SANDBOX_DRIVER: 'kubernetes',
      KUBECONFIG: kubeconfig,
      BERTH_K8S_NAMESPACE: namespace,
      BERTH_K8S_EXECUTOR_IMAGE: 'registry.example/berth-executor:test',
      BERTH_K8S_READY_TIMEOUT_MS: '30000',
      ...extra,
    },
    async close() {
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
