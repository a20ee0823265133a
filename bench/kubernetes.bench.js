'use strict';
/**
 * The kubernetes sandbox driver against FakeKube, the Kubernetes API stand-in of libs/testing (run
 * by bench/run.js; no cluster can run here). Its kubelet starts each pod's executor as a jailed
 * local process, so a provision's time is the control plane's work (API calls, watch, claim, the
 * executor's /api/init) plus the pod's own start (process start until its readiness probe passes).
 * FakeKube runs in a process of its own (bench/lib/fake-kube-server.js). The pod's share is read from a watch of our own (pod ADDED → Ready=True); the control plane's
 * share is the rest. On a real cluster the pod's share is the node's (image, runtime, CNI); the
 * control plane's share is what Berth answers for.
 *
 *   - cold: `provision` with no warm pool, BENCH_K8S_SANDBOXES times (default 30), one at a time;
 *   - warm: a warm pool of 2, each claim once the pool has refilled (the steady state);
 *   - burst: BENCH_K8S_BURST sandboxes (default 100) provisioned at once, cold: time until all are
 *     ready, and until the last pod was created (the control plane's part of the burst).
 * Anchor: Daytona's burst of 100 sandboxes all ready in 0.9 s (computesdk benchmarks 2026-05).
 */
const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { ms, summarize } = require('./lib/stats');
const { spawnNode } = require('./lib/proc');
const { ANCHORS, DAYTONA_BURST_MS } = require('./lib/anchors');

const BENCH = 'kubernetes';
const NAMESPACE = 'bench';
const IMAGE = 'registry.example/berth-executor:bench';
const WARM_UP = 3;
const WARM_POOL = 2;

function load(ctx) {
  for (const f of ['dist/libs/testing/src/index.js', 'dist/libs/sandbox/src/index.js', 'dist/libs/config/src/index.js', 'dist/apps/executor/src/main.js']) {
    if (!fs.existsSync(path.join(ctx.root, f))) throw new Error(`${f} is missing; run \`npm run build\``);
  }
  return {
    until: require(path.join(ctx.root, 'dist/libs/testing/src/until.js')).until,
    sandbox: require(path.join(ctx.root, 'dist/libs/sandbox/src/index.js')),
    kubernetesDriver: require(path.join(ctx.root, 'dist/libs/sandbox/src/kubernetes/kubernetes-driver.js')),
    config: require(path.join(ctx.root, 'dist/libs/config/src/index.js')),
    k8s: require('@kubernetes/client-node'),
  };
}

/** When each pod was first seen and first ready (ms, this process's clock), from a watch of the namespace. */
async function podTimeline(k8s, kubeConfig) {
  const added = new Map();
  const ready = new Map();
  const watch = new k8s.Watch(kubeConfig);
  const controller = await watch.watch(
    `/api/v1/namespaces/${NAMESPACE}/pods`,
    {},
    (phase, pod) => {
      const name = pod?.metadata?.name;
      if (!name) return;
      const now = performance.now();
      if (phase === 'ADDED' && !added.has(name)) added.set(name, now);
      const isReady = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (isReady && !ready.has(name)) ready.set(name, now);
    },
    () => undefined,
  );
  return {
    /** The pod's own start (created → ready), or null when it was not seen starting. */
    startMs: (name) => (added.has(name) && ready.has(name) ? ready.get(name) - added.get(name) : null),
    createdAt: (name) => added.get(name),
    stop: () => controller.abort(),
  };
}

function driverOn(lib, kubeConfig, warmPoolSize) {
  const config = lib.config.loadConfig(
    { BERTH_SANDBOX_DRIVER: 'kubernetes', BERTH_K8S_EXECUTOR_IMAGE: IMAGE, BERTH_K8S_NAMESPACE: NAMESPACE, BERTH_WARM_POOL_SIZE: String(warmPoolSize), BERTH_K8S_WORKSPACE: 'emptyDir' },
    [],
  );
  return new lib.kubernetesDriver.KubernetesSandboxDriver({ config: config.kubernetes, defaultNetwork: 'none', kubeConfig });
}

async function readyWarmPods(lib, core) {
  const { LABEL } = lib.sandbox;
  const pods = await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `${LABEL.pool}=warm` });
  return pods.items.filter((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
}

/** Sequential provisions: total and control-plane share (total minus the pod's own start, when a pod was started). */
async function sequential(lib, kube, timeline, { warm, count }) {
  const driver = driverOn(lib, kube.config, warm ? WARM_POOL : 0);
  if (warm) driver.warm();
  const total = [];
  const share = [];
  try {
    for (let i = 0; i < count + WARM_UP; i++) {
      if (warm) await lib.until(async () => (await readyWarmPods(lib, kube.core)) >= WARM_POOL, 'the warm pool to refill', 60_000);
      const t0 = performance.now();
      const handle = await driver.provision({ id: randomUUID(), env: { BENCH: String(i) } });
      const elapsed = performance.now() - t0;
      // A claimed warm pod started before t0: none of its start is in `elapsed`.
      const createdDuring = (timeline.createdAt(handle.pod) ?? -Infinity) >= t0;
      const podStart = createdDuring ? (timeline.startMs(handle.pod) ?? 0) : 0;
      if (i >= WARM_UP) {
        total.push(elapsed);
        share.push(elapsed - podStart);
      }
      await driver.destroy(handle);
    }
  } finally {
    await driver.close();
  }
  return { total: summarize(total), share: summarize(share) };
}

async function burst(lib, kube, timeline, count) {
  const driver = driverOn(lib, kube.config, 0);
  const ids = Array.from({ length: count }, () => randomUUID());
  try {
    const t0 = performance.now();
    const results = await Promise.allSettled(ids.map((id) => driver.provision({ id })));
    const allReady = performance.now() - t0;
    const handles = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const lastCreated = Math.max(...handles.map((h) => timeline.createdAt(h.pod) ?? t0)) - t0;
    await Promise.allSettled(handles.map((h) => driver.destroy(h)));
    return { allReady, lastCreated, failed: count - handles.length };
  } finally {
    await driver.close();
  }
}

async function run(ctx) {
  const lib = load(ctx);
  const count = Number(process.env.BENCH_K8S_SANDBOXES || 30);
  const burstSize = Number(process.env.BENCH_K8S_BURST || 100);
  const dataDir = ctx.tmpdir('berth-bench-kube-');
  const kubeconfig = path.join(ctx.tmpdir('berth-bench-kubeconfig-'), 'config');
  const fake = spawnNode('fake-kube', path.join(__dirname, 'lib/fake-kube-server.js'), { args: [dataDir, kubeconfig], cwd: ctx.root });
  ctx.defer('stop FakeKube', () => fake.stop(20_000));
  await lib.until(() => fake.output().includes('ready') || !fake.alive, 'FakeKube to start', 30_000);
  if (!fs.existsSync(kubeconfig)) throw new Error(`FakeKube did not start:\n${fake.output()}`);
  const config = new lib.k8s.KubeConfig();
  config.loadFromFile(kubeconfig);
  const kube = { config, core: config.makeApiClient(lib.k8s.CoreV1Api) };
  const timeline = await podTimeline(lib.k8s, config);
  ctx.defer('stop the pod watch', () => timeline.stop());
  ctx.log(`\n  [kubernetes] FakeKube in its own process (${config.getCurrentCluster().server}); pods run the built executor in bubblewrap jails; ${count} sandboxes one at a time (+${WARM_UP} warm-up), then a burst of ${burstSize}`);

  const rows = [];
  for (const warm of [false, true]) {
    const label = warm ? `warm-pool claim (pool of ${WARM_POOL})` : 'cold pod create';
    const { total, share } = await sequential(lib, kube, timeline, { warm, count });
    ctx.log(`  [kubernetes] ${label}: provision p50 ${ms(total.p50)} ms p99 ${ms(total.p99)}; control plane's share p50 ${ms(share.p50)} ms p99 ${ms(share.p99)}`);
    rows.push({ label, total, share });
    ctx.report({
      bench: BENCH,
      storage: '-',
      target: `${label}: control plane's share (p50/p99)`,
      measured: `p50 ${ms(share.p50)} ms, p99 ${ms(share.p99)} ms (provision p50 ${ms(total.p50)} / p99 ${ms(total.p99)} ms) over ${share.n}`,
      ok: null,
    });
  }
  const [cold, warm] = rows;
  ctx.log(`  [kubernetes] a warm claim saves ${ms(cold.total.p50 - warm.total.p50)} ms at p50 over a cold create`);

  const b = await burst(lib, kube, timeline, burstSize);
  ctx.log(`  [kubernetes] burst of ${burstSize}: all ready in ${ms(b.allReady)} ms; last pod created after ${ms(b.lastCreated)} ms (the control plane's part)${b.failed ? `; ${b.failed} failed` : ''}`);
  ctx.log(`  anchor: Daytona, burst of 100 all ready in ${DAYTONA_BURST_MS} ms (its pods are pre-built VMs; here every pod starts a Node process on 2 cores)`);
  ctx.report({
    bench: BENCH,
    storage: '-',
    target: `burst of ${burstSize}: all ready (Daytona: ${DAYTONA_BURST_MS} ms for 100)`,
    measured: `${ms(b.allReady)} ms; every pod created within ${ms(b.lastCreated)} ms${b.failed ? `; ${b.failed} failed` : ''}`,
    anchor: ANCHORS.burstOf100,
    ok: b.failed === 0 ? b.allReady <= DAYTONA_BURST_MS : false,
  });
}

module.exports = { run };
