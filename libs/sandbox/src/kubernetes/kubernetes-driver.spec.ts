import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiException, CoreV1Api } from '@kubernetes/client-node';
import { loadConfig } from '@berth/config';
import { FakeKube, until } from '@berth/testing';
import { ExecutorClient, SANDBOX_TOKEN_HEADER } from '../executor-client';
import { SandboxDriverFixture, describeSandboxDriverContract } from '../sandbox-driver.contract';
import { KubernetesSandboxHandle, SandboxError, SandboxHandle } from '../sandbox-driver';
import { KubernetesSandboxDriver } from './kubernetes-driver';
import { LABEL, podManifest } from './manifests';

/** Needs the built executor (`npm test` builds first): the fake's pods run it. */

const NAMESPACE = 'sandboxes';
const IMAGE = 'registry.example/berth-executor:1';

interface KubeFixture extends SandboxDriverFixture {
  fake: FakeKube;
  driver: KubernetesSandboxDriver;
  /** Another replica: a driver of its own on the same cluster. */
  replica(): KubernetesSandboxDriver;
}

function driverOn(fake: FakeKube, env: Record<string, string>): KubernetesSandboxDriver {
  const config = loadConfig({ BERTH_SANDBOX_DRIVER: 'kubernetes', BERTH_K8S_EXECUTOR_IMAGE: IMAGE, BERTH_K8S_NAMESPACE: NAMESPACE, BERTH_K8S_READY_TIMEOUT_MS: '30000', ...env }, []);
  return new KubernetesSandboxDriver({ config: config.kubernetes!, defaultNetwork: 'none', kubeConfig: fake.kubeConfig() });
}

const asPod = (handle: SandboxHandle) => handle as KubernetesSandboxHandle;

async function kubeFixture(env: Record<string, string> = {}): Promise<KubeFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-kube-'));
  const fake = await FakeKube.start({ dataDir });
  const drivers: KubernetesSandboxDriver[] = [];
  const replica = () => {
    const d = watched(driverOn(fake, env));
    drivers.push(d);
    return d;
  };
  const running = (handle: SandboxHandle) => fake.pods().find((p) => p.namespace === NAMESPACE && p.name === asPod(handle).pod);
  // A pod's handle stays the same across container restarts: a handle's executor is the process that ran when the driver returned it.
  const identities = new WeakMap<SandboxHandle, string>();
  const remember = (handle: SandboxHandle) => {
    identities.set(handle, String(running(handle)?.pid ?? 'none'));
    return handle;
  };
  const watched = (d: KubernetesSandboxDriver) => {
    const { provision, ensureRunning } = { provision: d.provision.bind(d), ensureRunning: d.ensureRunning.bind(d) };
    d.provision = (spec) => provision(spec).then(remember);
    d.ensureRunning = (handle) => ensureRunning(handle).then(remember);
    return d;
  };
  const folderOf = (handle: SandboxHandle) => {
    const h = asPod(handle);
    return h.volume ? fake.claimFolder(NAMESPACE, h.volume) : (running(handle)?.volumes.workspace ?? null);
  };
  return {
    fake,
    driver: replica(),
    replica,
    crash: (handle) => fake.crashContainer(asPod(handle).pod, NAMESPACE),
    executorIdentity: (handle) => identities.get(handle) ?? 'unknown',
    countExecutors: async (handle) => fake.objects('pods', NAMESPACE).filter((p) => p.metadata.labels?.[LABEL.sandbox] === handle.id).length,
    async executorEnv(handle) {
      const pid = running(handle)!.pid;
      const raw = await readFile(`/proc/${pid}/environ`, 'utf8');
      const env: Record<string, string> = Object.fromEntries(
        raw
          .split('\0')
          .filter(Boolean)
          .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
      );
      // The executor applies the sandbox's variables of BERTH_SANDBOX_INIT (its Secret's `init`), but none of BERTH_*.
      const init = env.BERTH_SANDBOX_INIT ? (JSON.parse(env.BERTH_SANDBOX_INIT).env as Record<string, string>) : {};
      return { ...env, ...Object.fromEntries(Object.entries(init).filter(([name]) => !name.startsWith('BERTH_'))) };
    },
    async writeFile(handle, path, content) {
      const file = join(folderOf(handle)!, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
    },
    readFile: async (handle, path) => {
      const folder = folderOf(handle);
      return folder ? readFile(join(folder, path), 'utf8').catch(() => undefined) : undefined;
    },
    storageExists: async (handle) => {
      const folder = folderOf(handle);
      return !!folder && existsSync(folder);
    },
    async dispose() {
      for (const d of drivers) await d.close();
      await fake.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

describeSandboxDriverContract('kubernetes (on FakeKube)', () => kubeFixture(), { onClose: 'keep' });

/** A command in the sandbox's shell: its stdout. */
async function shell(handle: SandboxHandle, command: string): Promise<string> {
  const res = await fetch(`${handle.url}/api/bash/execute_bash_command`, {
    method: 'POST',
    headers: { [SANDBOX_TOKEN_HEADER]: handle.token, 'content-type': 'application/json' },
    body: JSON.stringify({ command, cwd: '/workspace', timeout: 20 }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { stdout: string }).stdout;
}

function reasonOf(err: unknown): string | undefined {
  return err instanceof SandboxError ? err.reason : undefined;
}

describe('KubernetesSandboxDriver', () => {
  let fixture: KubeFixture;
  afterEach(async () => {
    await fixture?.dispose();
  });

  const warmPods = (fake: FakeKube) =>
    fake.objects('pods', NAMESPACE).filter((p) => p.metadata.labels?.[LABEL.pool] === 'warm' && p.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'));

  it('runs the executor hardened: its uid, a read-only root, the workspace and /tmp writable, the host unseen', async () => {
    fixture = await kubeFixture();
    const handle = await fixture.driver.provision({ id: randomUUID(), env: { GREETING: 'hello' } });
    const hostFolder = dirname(fixture.fake.claimFolder(NAMESPACE, asPod(handle).volume!)!);
    const out = (await shell(handle, `id -u; echo "$GREETING"; touch /workspace/w /tmp/t && echo rw; touch /etc/x 2>/dev/null || echo ro; ls -d /root ${hostFolder} /etc/shadow 2>/dev/null | wc -l`)).trim().split('\n');
    expect(out).toEqual(['10001', 'hello', 'rw', 'ro', '0']);
  });

  it('renders its Secret, PVC and NetworkPolicy, and removes them with the pod on destroy', async () => {
    fixture = await kubeFixture();
    const { fake, driver } = fixture;
    const handle = asPod(await driver.provision({ id: randomUUID(), tenantId: 'tenant-1', network: 'egress', egressCidrs: ['203.0.113.0/24'] }));
    const secret = fake.object('secrets', NAMESPACE, handle.secret)!;
    // stringData as the server stores it: base64 data.
    expect(secret.stringData).toBeUndefined();
    expect(Buffer.from(secret.data.token, 'base64').toString()).toBe(handle.token);
    expect(JSON.parse(Buffer.from(secret.data.init, 'base64').toString())).toEqual({ root: '/workspace', env: {} });
    expect(fake.object('persistentvolumeclaims', NAMESPACE, handle.volume!)).toMatchObject({ status: { phase: 'Bound' }, spec: { resources: { requests: { storage: '10Gi' } } } });
    const policy = fake.object('networkpolicies', NAMESPACE, handle.pod)!;
    expect(policy.spec.podSelector).toEqual({ matchLabels: { [LABEL.slot]: handle.pod } });
    expect(policy.spec.egress[1]).toEqual({ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }] });
    expect(fake.object('pods', NAMESPACE, handle.pod)!.metadata.labels[LABEL.tenant]).toBe('tenant-1');

    await driver.destroy(handle);
    for (const resource of ['pods', 'secrets', 'persistentvolumeclaims', 'networkpolicies']) expect(fake.objects(resource, NAMESPACE)).toEqual([]);
    await until(() => fake.pods().length === 0, 'the container to end');
  });

  it('has its pod admitted by the restricted profile, which refuses a weakened one', async () => {
    fixture = await kubeFixture();
    const core = fixture.fake.kubeConfig().makeApiClient(CoreV1Api);
    const config = loadConfig({ BERTH_SANDBOX_DRIVER: 'kubernetes', BERTH_K8S_EXECUTOR_IMAGE: IMAGE }, []);
    const slot = { slot: 'berth-weak', namespace: NAMESPACE, instance: 'berth', template: config.kubernetes!.templates.default, sandboxId: randomUUID(), tenantId: 'none', pool: 'claimed' as const };
    const pod = podManifest(slot);
    const container = pod.spec!.containers[0];
    container.securityContext = { ...container.securityContext, allowPrivilegeEscalation: true, capabilities: { add: ['NET_ADMIN'] } };
    pod.spec!.securityContext = { ...pod.spec!.securityContext, runAsNonRoot: false };
    const refused = await core.createNamespacedPod({ namespace: NAMESPACE, body: pod }).catch((err: ApiException<string>) => err);
    expect(refused).toBeInstanceOf(ApiException);
    expect((refused as ApiException<string>).code).toBe(403);
    expect(JSON.parse((refused as ApiException<string>).body).message).toBe(
      'pods "berth-weak" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "executor" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (container "executor" must set securityContext.capabilities.drop=["ALL"]; container "executor" must not include "NET_ADMIN" in securityContext.capabilities.add), ' +
        'runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)',
    );
    // The driver's own pod is admitted.
    const created = await core.createNamespacedPod({ namespace: NAMESPACE, body: podManifest({ ...slot, slot: 'berth-hardened' }), fieldValidation: 'Strict' });
    expect(created.metadata?.uid).toEqual(expect.any(String));
  });

  it('pauses by deleting the pod and keeping the PVC; resume makes a new pod on the same files', async () => {
    fixture = await kubeFixture();
    const { fake, driver } = fixture;
    const handle = asPod(await driver.provision({ id: randomUUID() }));
    const before = fake.object('pods', NAMESPACE, handle.pod)!.metadata.uid;
    await shell(handle, 'echo kept > notes.txt');
    await driver.stop(handle);
    expect(fake.object('pods', NAMESPACE, handle.pod)).toBeUndefined();
    expect(fake.object('persistentvolumeclaims', NAMESPACE, handle.volume!)).toBeDefined();
    expect(fake.object('secrets', NAMESPACE, handle.secret)).toBeDefined();
    const resumed = await driver.resume(handle);
    expect(fake.object('pods', NAMESPACE, handle.pod)!.metadata.uid).not.toBe(before);
    expect((await shell(resumed, 'cat notes.txt')).trim()).toBe('kept');
  });

  it('keeps the workspace in an emptyDir when told: no PVC, and the files go with the pod', async () => {
    fixture = await kubeFixture({ BERTH_K8S_WORKSPACE: 'emptyDir' });
    const { fake, driver } = fixture;
    const handle = asPod(await driver.provision({ id: randomUUID() }));
    expect(handle.volume).toBeNull();
    expect(fake.objects('persistentvolumeclaims', NAMESPACE)).toEqual([]);
    await shell(handle, 'echo lost > notes.txt');
    expect(await fixture.readFile(handle, 'notes.txt')).toBe('lost\n');
    await driver.stop(handle);
    const resumed = await driver.resume(handle);
    expect((await shell(resumed, 'ls notes.txt 2>/dev/null | wc -l')).trim()).toBe('0');
  });

  describe('failures surface as the sandbox error reason', () => {
    it('ImagePullBackOff', async () => {
      fixture = await kubeFixture();
      fixture.fake.failPulls(IMAGE);
      const err = await fixture.driver.provision({ id: randomUUID() }).catch((e: unknown) => e);
      expect(reasonOf(err)).toBe('ImagePullBackOff');
      expect((err as Error).message).toContain(`Back-off pulling image "${IMAGE}"`);
    });

    it('Unschedulable', async () => {
      fixture = await kubeFixture();
      fixture.fake.unschedulable(true);
      const err = await fixture.driver.provision({ id: randomUUID() }).catch((e: unknown) => e);
      expect(reasonOf(err)).toBe('Unschedulable');
      expect((err as Error).message).toContain('0/1 nodes are available');
    });

    it('CrashLoopBackOff (and inventory reports it)', async () => {
      fixture = await kubeFixture();
      const { fake, driver } = fixture;
      const handle = asPod(await driver.provision({ id: randomUUID() }));
      await fake.crashLoop(handle.pod, NAMESPACE);
      const err = await driver.ensureRunning(handle).catch((e: unknown) => e);
      expect(reasonOf(err)).toBe('CrashLoopBackOff');
      expect(await driver.status(handle)).toBe('error');
      expect(await driver.inventory()).toEqual([{ sandboxId: handle.id, state: 'error', reason: 'CrashLoopBackOff' }]);
    });
  });

  it('lists what it holds for inventory() and removes an orphan with removeOrphan()', async () => {
    fixture = await kubeFixture();
    const { fake, driver } = fixture;
    const running = await driver.provision({ id: randomUUID() });
    const paused = await driver.provision({ id: randomUUID() });
    await driver.stop(paused);
    const inventory = await driver.inventory();
    expect(inventory).toHaveLength(2);
    expect(inventory).toEqual(expect.arrayContaining([{ sandboxId: running.id, state: 'running' }, { sandboxId: paused.id, state: 'stopped' }]));

    // A removal cut short: only the claim and the policy are left; they still name their sandbox.
    const core = fake.kubeConfig().makeApiClient(CoreV1Api);
    await core.deleteNamespacedSecret({ namespace: NAMESPACE, name: asPod(paused).secret });
    expect(await driver.inventory()).toContainEqual({ sandboxId: paused.id, state: 'stopped' });

    await driver.removeOrphan(paused.id);
    await driver.removeOrphan(running.id);
    expect(await driver.inventory()).toEqual([]);
    for (const resource of ['pods', 'secrets', 'persistentvolumeclaims', 'networkpolicies']) expect(fake.objects(resource, NAMESPACE)).toEqual([]);
  });

  it("never lists, claims nor removes another installation's objects in a shared namespace (BERTH_K8S_INSTANCE)", async () => {
    fixture = await kubeFixture({ BERTH_WARM_POOL_SIZE: '1' });
    const { fake, driver } = fixture;
    driver.warm();
    await until(() => warmPods(fake).length === 1, 'a warm pod', 30_000);
    const ours = await driver.provision({ id: randomUUID() });
    await until(() => warmPods(fake).length === 1, 'the pool to be refilled', 30_000);
    const [ourWarm] = warmPods(fake);
    const other = driverOn(fake, { BERTH_K8S_INSTANCE: 'other-release', BERTH_WARM_POOL_SIZE: '1' });
    try {
      other.warm();
      expect(await other.inventory()).toEqual([]);
      await other.removeOrphan(ours.id);
      expect(await driver.status(ours)).toBe('running');
      // Its first sandbox finds no warm pod of its own yet: it starts cold rather than take ours.
      const theirs = asPod(await other.provision({ id: randomUUID() }));
      expect(theirs.pod).not.toBe(ourWarm.metadata.name);
      expect(fake.object('pods', NAMESPACE, ourWarm.metadata.name)!.metadata.labels).toMatchObject({ [LABEL.pool]: 'warm', [LABEL.instance]: 'berth' });
      expect(await driver.inventory()).toEqual([{ sandboxId: ours.id, state: 'running' }]);
      expect(await other.inventory()).toEqual([{ sandboxId: theirs.id, state: 'running' }]);
    } finally {
      await other.close();
    }
  });

  describe('warm pool', () => {
    it("claims a warm pod whatever the request's env, binds the sandbox's variables late, and refills", async () => {
      fixture = await kubeFixture({ BERTH_WARM_POOL_SIZE: '1' });
      const { fake, driver } = fixture;
      driver.warm();
      await until(() => warmPods(fake).length === 1, 'a warm pod', 30_000);
      const [warm] = warmPods(fake);
      const handle = asPod(await driver.provision({ id: randomUUID(), tenantId: 'tenant-1', env: { ONE: '1', TWO: 'two words' } }));
      expect(handle.pod).toBe(warm.metadata.name);
      const pod = fake.object('pods', NAMESPACE, handle.pod)!;
      expect(pod.metadata.labels).toMatchObject({ [LABEL.sandbox]: handle.id, [LABEL.tenant]: 'tenant-1', [LABEL.pool]: 'claimed' });
      expect((await shell(handle, 'echo "$ONE/$TWO"')).trim()).toBe('1/two words');
      // A restarted container serves the same sandbox: its Secret has the variables now.
      await fake.crashContainer(handle.pod, NAMESPACE);
      const restarted = await driver.ensureRunning(handle);
      expect((await shell(restarted, 'echo "$ONE/$TWO"')).trim()).toBe('1/two words');
      await until(() => warmPods(fake).length === 1 && warmPods(fake)[0].metadata.name !== handle.pod, 'the pool to be refilled', 30_000);
    });

    it("removes what a vanished warm pod left (its Secret, PVC and policy) once older than a start may take", async () => {
      fixture = await kubeFixture({ BERTH_WARM_POOL_SIZE: '1', BERTH_K8S_READY_TIMEOUT_MS: '1000' });
      const { fake, driver } = fixture;
      driver.warm();
      await until(() => warmPods(fake).length === 1, 'a warm pod', 30_000);
      const [gone] = warmPods(fake);
      const core = fake.kubeConfig().makeApiClient(CoreV1Api);
      await core.deleteNamespacedPod({ namespace: NAMESPACE, name: gone.metadata.name, gracePeriodSeconds: 0 });
      await until(() => !fake.object('pods', NAMESPACE, gone.metadata.name), 'the pod to go', 30_000);
      expect(fake.object('secrets', NAMESPACE, gone.metadata.name)).toBeDefined();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      // The next claim finds no warm pod, starts cold and refills, which clears the leftovers.
      await driver.provision({ id: randomUUID() });
      await until(() => ['secrets', 'persistentvolumeclaims', 'networkpolicies'].every((r) => !fake.object(r, NAMESPACE, gone.metadata.name)), 'the leftovers to go', 30_000);
      await until(() => warmPods(fake).length === 1, 'a new warm pod', 30_000);
    });

    it('lets exactly one of two replicas racing for one warm pod have it; the other starts cold', async () => {
      fixture = await kubeFixture({ BERTH_WARM_POOL_SIZE: '1' });
      const { fake, driver } = fixture;
      const other = fixture.replica();
      driver.warm();
      await until(() => warmPods(fake).length === 1, 'a warm pod', 30_000);
      other.warm();
      const [warm] = warmPods(fake);
      const [a, b] = (await Promise.all([driver.provision({ id: randomUUID() }), other.provision({ id: randomUUID() })])).map(asPod);
      const claimed = [a, b].filter((h) => h.pod === warm.metadata.name);
      expect(claimed).toHaveLength(1);
      const loser = claimed[0] === a ? b : a;
      expect(loser.pod === `berth-${loser.id}` || loser.pod.startsWith('berth-warm-')).toBe(true);
      for (const h of [a, b]) expect(await new ExecutorClient(h).health()).toEqual({ status: 'ok' });
      expect(new Set([a.url, b.url]).size).toBe(2);
    });
  });
});
