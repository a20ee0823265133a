'use strict';
/**
 * Gateway foundation benchmark (run by bench/run.js).
 *
 * 1. A raw Fastify hello-world (bench/raw-fastify.js) as a child process: closed-loop load on GET /.
 * 2. For each storage mode (PostgreSQL + Redis in a throw-away database, and the embedded PGlite
 *    default), Berth as a child process (dist/apps/gateway/src/main.js):
 *    - load on GET /health and on authenticated GET /api/conversations/count (empty table);
 *    - seed N conversations through POST /api/conversations (concurrency 16);
 *    - 200 sequential GET /api/conversations/search?limit=100 (first page) and
 *      GET /api/conversations/count at N rows, after 20 warm-up requests each.
 * Targets (issue): count ≥ 0.6× raw Fastify req/s; /health p95 under load < 5 ms;
 * first page of 2,000 conversations < 20 ms (judged here at p95 of the sequential requests).
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runLoad, runSequential, runPool, request, keepAliveAgent } = require('./lib/load');
const { freePort, spawnNode, waitForHttp, getStatus, cpuSecondsByName, rssBytes } = require('./lib/proc');
const { ms, int } = require('./lib/stats');
const { berthEnv, prepareStorage } = require('./lib/berth');
const { summarizeProfile, formatSummary } = require('./lib/cpuprofile');
const { ANCHORS } = require('./lib/anchors');

const BENCH = 'gateway';
const API_KEY = 'bench-key';
const AUTH = { 'X-Session-API-Key': API_KEY };
const HOST = '127.0.0.1';
const SEED_CONCURRENCY = 16;
const SEQUENTIAL_N = 200;
const SEQUENTIAL_WARMUP = 20;
const TARGET_COUNT_RATIO = 0.6;
const TARGET_HEALTH_P95_MS = 5;
const TARGET_FIRST_PAGE_MS = 20;
const GENERATOR_BOUND_CPU = 0.85; // load generator (single-threaded) near one core: client-bound figures
const NOISY_OTHER_CPU = 0.15; // cores used by unrelated processes above which a scenario is flagged

const CONVERSATION_BODY = JSON.stringify({
  agent: { kind: 'Agent', llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-bench' }, tools: [{ name: 'terminal' }] },
  workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
});

const COLS = [
  ['scenario', 48, 'l'],
  ['req/s', 8],
  ['p50 ms', 8],
  ['p95 ms', 8],
  ['p99 ms', 8],
  ['max ms', 8],
  ['errors', 7],
  ['srv CPU', 8],
  ['gen CPU', 8],
  ['db CPU', 7],
  ['other', 6],
  ['req/srv-CPU-s', 13],
];
const row = (cells) => '  ' + cells.map((c, i) => (COLS[i][2] === 'l' ? String(c).padEnd(COLS[i][1]) : String(c).padStart(COLS[i][1]))).join(' ');
const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${Math.round(v * 100)}%`);

function printHeader(log) {
  log(row(COLS.map((c) => c[0])));
}

function printResult(log, label, r, { repeated = false } = {}) {
  const l = r.latency;
  log(row([label, r.rps === undefined ? '-' : int(r.rps), ms(l.p50), ms(l.p95), ms(l.p99), ms(l.max), r.errors, pct(r.serverCpu), pct(r.clientCpu), pct(r.probeCpu && r.probeCpu.db), pct(r.otherCpu), r.serverCpu ? int(r.rps / r.serverCpu) : '-']));
  if (repeated) return;
  if (r.clientCpu > GENERATOR_BOUND_CPU) {
    log(`    ~ load generator at ${pct(r.clientCpu)} of a core: this figure is bounded by the client, the server could do more (compare req/srv-CPU-s)`);
  }
  if (r.otherCpu > NOISY_OTHER_CPU) log(`    ! other processes kept ${pct(r.otherCpu)} of a core busy during this scenario: figures are disturbed`);
  if (r.errors) log(`    ! ${r.errors} error(s); first: ${r.firstError || JSON.stringify(r.statuses)}`);
}

async function benchRawFastify(ctx) {
  const { options, log } = ctx;
  const port = await freePort();
  const raw = spawnNode('raw-fastify', path.join(__dirname, 'raw-fastify.js'), { args: [String(port), HOST], cwd: ctx.root });
  ctx.defer('stop raw fastify', () => raw.stop());
  await waitForHttp(raw, `http://${HOST}:${port}/`);
  const r = await runLoad(
    { host: HOST, port, pid: raw.pid },
    { label: 'raw', path: '/', concurrency: options.concurrency, durationMs: options.durationMs, warmupMs: options.warmupMs },
  );
  printResult(log, 'raw Fastify       GET /', r);
  await raw.stop();
  return r;
}


async function seed(target, n) {
  const agent = keepAliveAgent(SEED_CONCURRENCY);
  try {
    return await runPool(n, SEED_CONCURRENCY, async () => {
      const res = await request(agent, target, { method: 'POST', path: '/api/conversations', headers: AUTH, body: CONVERSATION_BODY, readBody: true });
      return res.status === 201 ? true : `status ${res.status}: ${String(res.body).slice(0, 200)}`;
    });
  } finally {
    agent.destroy();
  }
}

async function benchBerth(ctx, mode, raw) {
  const { options, log } = ctx;
  const dataDir = ctx.tmpdir(`berth-bench-${mode}-`);
  const store = await prepareStorage(ctx, mode);
  if (!store) {
    ctx.report({ bench: BENCH, storage: mode, target: 'all', measured: 'skipped (storage unreachable)', ok: null });
    return;
  }
  log(`\n  [${mode}] storage: ${store.label}`);
  const port = await freePort();
  const env = berthEnv({
    OH_SESSION_API_KEYS_0: API_KEY,
    LOG_LEVEL: 'warn',
    BERTH_DATA_DIR: dataDir,
    OH_CONVERSATIONS_PATH: path.join(dataDir, 'conversations'),
    ...store.env,
  });
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing; run \`npm run build\` (npm run bench does it)`);
  const berth = spawnNode(`berth[${mode}]`, main, { args: ['--host', HOST, '--port', String(port)], env, cwd: ctx.root, profile: options.cpuProf });
  ctx.defer(`stop berth[${mode}]`, () => berth.stop());
  // In postgres mode, the PostgreSQL server shares the cores too: account for all its processes.
  const cpuProbes = store.db ? { db: () => cpuSecondsByName('postgres') } : {};
  const target = { host: HOST, port, pid: berth.pid, cpuProbes };
  const readyMs = await waitForHttp(berth, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  log(`  [${mode}] Berth ready in ${int(readyMs)} ms (pid ${berth.pid}, port ${port})`);
  const authCheck = await getStatus(`http://${HOST}:${port}/api/conversations/count`);
  if (authCheck !== 401) log(`  ! unauthenticated count answered ${authCheck}, expected 401`);
  printHeader(log);
  printResult(log, 'raw Fastify       GET / (above)', raw, { repeated: true });

  const load = { concurrency: options.concurrency, durationMs: options.durationMs, warmupMs: options.warmupMs };
  const health = await runLoad(target, { ...load, path: '/health' });
  printResult(log, 'Berth             GET /health', health);

  let profileFile = null;
  if (options.cpuProf) await berth.profileStart();
  const count = await runLoad(target, { ...load, path: '/api/conversations/count', headers: AUTH });
  if (options.cpuProf) {
    const dir = path.join(os.tmpdir(), `berth-bench-profiles-${process.pid}`);
    fs.mkdirSync(dir, { recursive: true });
    profileFile = path.join(dir, `berth-${mode}-count.cpuprofile`);
    await berth.profileStop(profileFile);
  }
  printResult(log, 'Berth (auth)      GET /api/conversations/count', count);

  const seeded = await seed(target, options.conversations);
  log(
    `  [${mode}] seeded ${int(seeded.ok)} conversations in ${seeded.seconds.toFixed(2)} s ` +
      `(${int(seeded.rate)}/s at concurrency ${SEED_CONCURRENCY})${seeded.failed ? `; ${seeded.failed} failed, first: ${seeded.firstError}` : ''}`,
  );
  const countAgent = keepAliveAgent(1);
  const counted = await request(countAgent, target, { path: '/api/conversations/count', headers: AUTH, readBody: true }).catch((e) => ({ status: 0, body: e.message }));
  countAgent.destroy();
  if (counted.status !== 200 || Number(counted.body) !== seeded.ok) log(`  ! count after seeding: ${counted.status} ${counted.body} (expected ${seeded.ok})`);

  const n = options.conversations;
  const expectedItems = Math.min(100, seeded.ok);
  const firstPage = await runSequential(target, {
    path: '/api/conversations/search?limit=100',
    headers: AUTH,
    n: SEQUENTIAL_N,
    warmup: SEQUENTIAL_WARMUP,
    check: (body) => {
      try {
        const items = JSON.parse(body).items;
        return Array.isArray(items) && items.length === expectedItems ? null : `first page had ${items && items.length} items, expected ${expectedItems}`;
      } catch (err) {
        return `unparsable page: ${err.message}`;
      }
    },
  });
  printResult(log, `Berth (seq.)      search?limit=100 @ ${int(n)} rows`, firstPage);
  const countSeq = await runSequential(target, { path: '/api/conversations/count', headers: AUTH, n: SEQUENTIAL_N, warmup: SEQUENTIAL_WARMUP });
  printResult(log, `Berth (seq.)      count @ ${int(n)} rows`, countSeq);
  const countLoaded = await runLoad(target, { ...load, path: '/api/conversations/count', headers: AUTH });
  printResult(log, `Berth (auth)      count @ ${int(n)} rows, under load`, countLoaded);

  const noisy = (...rs) => (rs.some((r) => r.otherCpu > NOISY_OTHER_CPU) ? ' [disturbed]' : '');
  const healthRatio = health.rps / raw.rps;
  const countRatio = count.rps / raw.rps;
  log(
    `  [${mode}] ratios vs raw Fastify (req/s): health ${healthRatio.toFixed(2)}×, count ${countRatio.toFixed(2)}× ` +
      `(count @ ${int(n)} rows ${(countLoaded.rps / raw.rps).toFixed(2)}×)`,
  );

  const rss = rssBytes(berth.pid);
  if (rss !== null) log(`  [${mode}] Berth RSS at the end: ${int(rss / 2 ** 20)} MiB`);
  const stopped = await berth.stop();
  if (stopped.code && stopped.code !== 0) log(`  ! Berth exited with code ${stopped.code}:\n${berth.output().slice(-2000)}`);
  if (store.db) await store.db.drop().catch((err) => log(`  ! dropping ${store.db.name} failed: ${err.message}`));

  if (profileFile) {
    log(`  [${mode}] CPU profile of Berth during the authenticated-count load: ${profileFile}`);
    try {
      log(formatSummary(summarizeProfile(JSON.parse(fs.readFileSync(profileFile, 'utf8')), 15)));
    } catch (err) {
      log(`  ! could not summarise the profile: ${err.message}`);
    }
  }

  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `count req/s ≥ ${TARGET_COUNT_RATIO}× raw Fastify`,
    measured: `${countRatio.toFixed(2)}× (${int(count.rps)} vs ${int(raw.rps)} req/s)${noisy(count, raw)}`,
    ok: countRatio >= TARGET_COUNT_RATIO,
  });
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `/health p95 under load < ${TARGET_HEALTH_P95_MS} ms`,
    measured: `p95 ${ms(health.latency.p95)} ms (p99 ${ms(health.latency.p99)}, ${int(health.rps)} req/s, c=${options.concurrency})${noisy(health)}`,
    anchor: ANCHORS.healthUnderLoad,
    ok: health.latency.p95 < TARGET_HEALTH_P95_MS && health.errors === 0,
  });
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `first page of ${int(n)} conversations p95 < ${TARGET_FIRST_PAGE_MS} ms`,
    measured: `p95 ${ms(firstPage.latency.p95)} ms (p50 ${ms(firstPage.latency.p50)}, p99 ${ms(firstPage.latency.p99)})${noisy(firstPage)}`,
    anchor: ANCHORS.firstPage,
    ok: firstPage.latency.p95 < TARGET_FIRST_PAGE_MS && firstPage.errors === 0,
  });
}

async function run(ctx) {
  const { options, log } = ctx;
  log(
    `  ${os.cpus().length} CPU(s) shared: each server child and this load generator (one Node process, ` +
      `${options.concurrency} keep-alive connections, closed loop) compete for the same cores, equally for every target.`,
  );
  log('  srv CPU / gen CPU = CPU used by the server child / the load generator, in % of one core;');
  log('  db CPU = all local `postgres` processes (postgres mode; the embedded database runs inside the server);');
  log('  other = machine-wide CPU not accounted for above (other processes, hypervisor steal): should be ~0%;');
  log('  req/srv-CPU-s = requests served per CPU-second of the server child (less sensitive to who saturates first).\n');
  printHeader(log);
  const raw = await benchRawFastify(ctx);
  for (const mode of options.storage) await benchBerth(ctx, mode, raw);
}

module.exports = { run };
