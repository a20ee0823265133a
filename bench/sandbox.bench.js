'use strict';
/**
 * Sandbox time-to-interactive (run by bench/run.js): `POST /api/sandboxes` → first
 * `execute_bash_command` result through `/sandboxes/{id}`, sequentially over BENCH_SANDBOXES
 * sandboxes (default 100; each is deleted after its measurement, not timed), on each storage mode.
 * Anchors: bench/lib/anchors.js (computesdk, 2026-05: Daytona p50 186 / p99 560 ms). Targets: p50 ≤ 150 ms
 * cold (BERTH_WARM_POOL_SIZE=0); p50 ≤ 30 ms and p99 ≤ 60 ms with a warm pool of pre-started executors (BERTH_WARM_POOL_SIZE=2,
 * sandboxes asked for BENCH_POOL_GAP_MS apart — default 1500 — so the pool has refilled: the steady
 * state of a service whose sandboxes are not all created in one burst).
 * Isolation: cold starts and warm-pool starts, each with bubblewrap (BERTH_SANDBOX_ISOLATION=bwrap,
 * the default) and without (none), and the ratio of their p50s (target ≤ 1.2: what bwrap costs). A
 * pooled executor is jailed for the id its sandbox will have, so the pool serves isolated sandboxes too.
 */
const fs = require('node:fs');
const path = require('node:path');
const { request, keepAliveAgent } = require('./lib/load');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { ms, summarize } = require('./lib/stats');
const { berthEnv, prepareStorage } = require('./lib/berth');
const { ANCHORS } = require('./lib/anchors');

const BENCH = 'sandbox';
const HOST = '127.0.0.1';
const API_KEY = 'bench-key';
const AUTH = { 'X-Session-API-Key': API_KEY };
const WARM_UP = 5;
const SCENARIOS = [
  { name: 'cold, isolated', isolation: 'bwrap', poolSize: '0', gapMs: 0, targetP50Ms: 150, targetP99Ms: Infinity },
  { name: 'cold, unisolated', isolation: 'none', poolSize: '0', gapMs: 0, targetP50Ms: 150, targetP99Ms: Infinity },
  { name: 'warm pool, isolated', isolation: 'bwrap', poolSize: '2', gapMs: Number(process.env.BENCH_POOL_GAP_MS || 1500), targetP50Ms: 30, targetP99Ms: 60 },
  { name: 'warm pool, unisolated', isolation: 'none', poolSize: '2', gapMs: Number(process.env.BENCH_POOL_GAP_MS || 1500), targetP50Ms: 30, targetP99Ms: 60 },
];
/** Isolated p50 over unisolated (cold, and from the warm pool): at most this. */
const TARGET_ISOLATION_RATIO = 1.2;


async function benchMode(ctx, mode, scenario, count) {
  const { log } = ctx;
  const store = await prepareStorage(ctx, mode, `berth_bench_sbx_${process.pid}_pool${scenario.poolSize}`);
  if (!store) {
    ctx.report({ bench: BENCH, storage: mode, target: 'all', measured: 'skipped (storage unreachable)', ok: null });
    return;
  }
  const dataDir = ctx.tmpdir(`berth-bench-sbx-${mode}-`);
  const port = await freePort();
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing; run \`npm run build\``);
  const env = berthEnv({
    OH_SESSION_API_KEYS_0: API_KEY,
    LOG_LEVEL: 'warn',
    BERTH_DATA_DIR: dataDir,
    BERTH_REAPER_INTERVAL_MS: '0',
    BERTH_WARM_POOL_SIZE: scenario.poolSize,
    BERTH_SANDBOX_ISOLATION: scenario.isolation,
    ...store.env,
  });
  const berth = spawnNode(`berth[${mode}]`, main, { args: ['--host', HOST, '--port', String(port)], env, cwd: ctx.root });
  ctx.defer(`stop berth[${mode}]`, () => berth.stop());
  await waitForHttp(berth, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  const label = `${mode}, ${scenario.name}`;
  log(`\n  [${label}] storage: ${store.label}; ${count} sandboxes, one at a time${scenario.gapMs ? ` ${scenario.gapMs} ms apart` : ''} (+${WARM_UP} warm-up)`);

  const agent = keepAliveAgent(2);
  const target = { host: HOST, port };
  const total = [];
  const create = [];
  const firstCommand = [];
  let failures = 0;
  try {
    for (let i = 0; i < count + WARM_UP; i++) {
      const t0 = process.hrtime.bigint();
      const created = await request(agent, target, { method: 'POST', path: '/api/sandboxes', headers: AUTH, body: '{}', readBody: true });
      const t1 = process.hrtime.bigint();
      if (created.status !== 201) {
        failures++;
        continue;
      }
      const { id } = JSON.parse(created.body);
      const ran = await request(agent, target, {
        method: 'POST',
        path: `/sandboxes/${id}/api/bash/execute_bash_command`,
        headers: AUTH,
        body: { command: 'echo ready' },
        readBody: true,
      });
      const t2 = process.hrtime.bigint();
      const ok = ran.status === 200 && JSON.parse(ran.body).exit_code === 0;
      if (!ok) failures++;
      if (ok && i >= WARM_UP) {
        create.push(Number(t1 - t0) / 1e6);
        firstCommand.push(Number(t2 - t1) / 1e6);
        total.push(Number(t2 - t0) / 1e6);
      }
      await request(agent, target, { method: 'DELETE', path: `/api/sandboxes/${id}`, headers: AUTH });
      if (scenario.gapMs) await new Promise((resolve) => setTimeout(resolve, scenario.gapMs));
    }
  } finally {
    agent.destroy();
  }
  const t = summarize(total);
  const c = summarize(create);
  const f = summarize(firstCommand);
  log(`  [${label}] create (executor started):  p50 ${ms(c.p50)} ms  p95 ${ms(c.p95)}  p99 ${ms(c.p99)}`);
  log(`  [${label}] first execute_bash_command: p50 ${ms(f.p50)} ms  p95 ${ms(f.p95)}  p99 ${ms(f.p99)}`);
  log(`  [${label}] time to interactive:        p50 ${ms(t.p50)} ms  p95 ${ms(t.p95)}  p99 ${ms(t.p99)}  (failures: ${failures})`);
  log(`  anchors: ${ANCHORS.timeToInteractive}`);
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `time to interactive p50 ≤ ${scenario.targetP50Ms} ms${Number.isFinite(scenario.targetP99Ms) ? `, p99 ≤ ${scenario.targetP99Ms} ms` : ''} (${scenario.name})`,
    measured: `p50 ${ms(t.p50)} ms, p99 ${ms(t.p99)} ms over ${t.n}${failures ? `, ${failures} failed` : ''}`,
    anchor: ANCHORS.timeToInteractive,
    ok: t.p50 <= scenario.targetP50Ms && t.p99 <= scenario.targetP99Ms && failures === 0,
  });
  // One Berth at a time: the next scenario measures on an otherwise idle machine.
  await berth.stop();
  return t.p50;
}

async function run(ctx) {
  const count = Number(process.env.BENCH_SANDBOXES || 100);
  for (const mode of ctx.options.storage) {
    const p50 = {};
    for (const scenario of SCENARIOS) p50[scenario.name] = await benchMode(ctx, mode, scenario, count);
    for (const start of ['cold', 'warm pool']) {
      const [isolated, unisolated] = [p50[`${start}, isolated`], p50[`${start}, unisolated`]];
      if (isolated === undefined || unisolated === undefined) continue;
      const ratio = isolated / unisolated;
      ctx.log(`  [${mode}] isolation cost: ${start} p50 ${ms(isolated)} ms isolated vs ${ms(unisolated)} ms unisolated = ${ratio.toFixed(2)}×`);
      ctx.report({ bench: BENCH, storage: mode, target: `isolated ${start} p50 ≤ ${TARGET_ISOLATION_RATIO}× unisolated`, measured: `${ratio.toFixed(2)}×`, ok: ratio <= TARGET_ISOLATION_RATIO });
    }
  }
}

module.exports = { run };
