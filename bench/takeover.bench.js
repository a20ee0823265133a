'use strict';
/**
 * Takeover benchmark (run by bench/run.js) — issue 11: how long the run of a worker killed with
 * kill -9 waits for another worker, against BERTH_RUN_STALL_MS. Figures are printed, never asserted.
 *
 * PostgreSQL + Redis only (a throw-away database and key prefix; skipped without them): a gateway and
 * workers as child processes, the scripted LLM stub of libs/testing in this process. For each stall
 * time in BENCH_TAKEOVER_STALLS, BENCH_TAKEOVER_TRIALS times: a worker starts a conversation whose
 * first step is `sleep 120`, a second worker is started, the first is killed with SIGKILL once the
 * action is stored, and the time until the run's next event is stored (the successor's
 * AgentErrorEvent for the cut-short step) is the takeover time.
 *
 * Environment (besides BENCH_PG_URL, BENCH_REDIS_URL of bench/run.js):
 *   BENCH_TAKEOVER_STALLS  BERTH_RUN_STALL_MS values (default 2000,5000)
 *   BENCH_TAKEOVER_TRIALS  kills per stall time (default 3)
 */
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { summarize, ms } = require('./lib/stats');
const { killTree } = require('./lib/proctree');
const { berthEnv, prepareStorage } = require('./lib/berth');

const BENCH = 'takeover';
const KEY = 'bench-takeover-key';
const sleep = (t) => new Promise((r) => setTimeout(r, t));

function listEnv(name, fallback) {
  return (process.env[name] || fallback).split(',').map((v) => Number(v.trim())).filter((v) => Number.isInteger(v) && v >= 500);
}

async function startBerth(ctx, name, script, env, dataDir) {
  const port = await freePort();
  const handle = spawnNode(name, path.join(ctx.root, script), { args: ['--host', '127.0.0.1', '--port', String(port)], env: berthEnv({ ...env, BERTH_DATA_DIR: dataDir }), cwd: ctx.root });
  ctx.defer(`stop ${name}`, () => killTree(handle, { dir: dataDir, force: true }));
  await waitForHttp(handle, `http://127.0.0.1:${port}/ready`);
  return { handle, url: `http://127.0.0.1:${port}` };
}

async function events(gateway, id) {
  const res = await fetch(`${gateway.url}/api/conversations/${id}/events/search?limit=100`, { headers: { 'X-Session-API-Key': KEY } });
  return (await res.json()).items;
}

async function waitFor(what, test, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await test();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function trial(ctx, gateway, llm, env, dataDir, stallMs, n) {
  const text = `takeover ${stallMs} ${n} ${randomUUID()}`;
  llm.script(text, (_req, turn) =>
    turn === 0 ? { toolCalls: [{ name: 'terminal', arguments: { command: 'sleep 120', timeout: 300 } }] } : { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
  );
  const first = await startBerth(ctx, `worker-a-${stallMs}-${n}`, 'dist/apps/worker/src/main.js', env, dataDir);
  const res = await fetch(`${gateway.url}/api/conversations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-Session-API-Key': KEY },
    body: JSON.stringify({
      agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
      workspace: { working_dir: `/workspace/takeover-${stallMs}-${n}` },
      initial_message: { role: 'user', content: [{ type: 'text', text }], run: false },
    }),
  });
  const { id } = await res.json();
  await waitFor('the first action', async () => (await events(gateway, id)).some((e) => e.kind === 'ActionEvent'));
  const second = await startBerth(ctx, `worker-b-${stallMs}-${n}`, 'dist/apps/worker/src/main.js', env, dataDir);
  const before = (await events(gateway, id)).length;
  const killedAt = Date.now();
  first.handle.child.kill('SIGKILL');
  await waitFor('the next event', async () => (await events(gateway, id)).length > before);
  const takeoverMs = Date.now() - killedAt;
  await waitFor('the end of the run', async () => (await events(gateway, id)).some((e) => e.kind === 'ObservationEvent' && e.tool_name === 'finish'));
  await killTree(first.handle, { dir: null, force: true });
  await killTree(second.handle, { graceMs: 10_000 });
  return takeoverMs;
}

async function run(ctx) {
  const { log } = ctx;
  const stalls = listEnv('BENCH_TAKEOVER_STALLS', '2000,5000');
  const trials = Number(process.env.BENCH_TAKEOVER_TRIALS || 3);
  log(`\n== ${BENCH}: run takeover after kill -9 of a worker, vs BERTH_RUN_STALL_MS`);
  const storage = await prepareStorage(ctx, 'postgres', `berth_bench_takeover_${process.pid}`);
  if (!storage || !storage.env.REDIS_URL) {
    log('  skipped: needs PostgreSQL and Redis');
    return;
  }
  const { LlmStub } = require(path.join(ctx.root, 'dist/libs/testing/src/index.js'));
  const llm = new LlmStub();
  await llm.start();
  ctx.defer('stop LLM stub', () => llm.stop());
  for (const stallMs of stalls) {
    const dataDir = ctx.tmpdir('berth-bench-takeover-');
    const env = { ...storage.env, OH_SECRET_KEY: 'bench-secret', BERTH_RUN_STALL_MS: String(stallMs), BERTH_WARM_POOL_SIZE: '0', LOG_LEVEL: 'warn' };
    const gateway = await startBerth(ctx, `gateway-${stallMs}`, 'dist/apps/gateway/src/main.js', { ...env, BERTH_ROLE: 'gateway', OH_SESSION_API_KEYS_0: KEY }, dataDir);
    const times = [];
    for (let n = 0; n < trials; n++) times.push(await trial(ctx, gateway, llm, env, dataDir, stallMs, n));
    await killTree(gateway.handle, { dir: dataDir, graceMs: 10_000 });
    const s = summarize(times);
    const ratio = s.max / stallMs;
    log(`  BERTH_RUN_STALL_MS=${stallMs}: takeover p50 ${ms(s.p50)} ms, max ${ms(s.max)} ms (${(s.p50 / stallMs).toFixed(2)}x / ${ratio.toFixed(2)}x the stall time; ${times.map((t) => ms(t)).join(', ')})`);
    ctx.report({ bench: BENCH, storage: 'postgres', target: `takeover ≤ 1.2 × ${stallMs} ms`, measured: `max ${ms(s.max)} ms (${ratio.toFixed(2)}x)`, ok: ratio <= 1.2 });
  }
}

module.exports = { run };
