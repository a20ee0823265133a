'use strict';
/**
 * Recovery after an outage (run by bench/run.js): a gateway on a PostgreSQL and a Redis of the
 * bench's own (test/support/faults.ts does the same for the fault tests); each is stopped for
 * BENCH_OUTAGE_MS (default 3000), then started again, BENCH_FAULT_ROUNDS times (default 3). Measured
 * from the moment the dependency accepts clients again: until an API request succeeds, until a
 * socket that stayed open receives an event posted after the recovery, and until every run that was
 * mid-run at the outage (BENCH_FAULT_RUNS of them, default 3, on a worker with BERTH_RUN_STALL_MS =
 * BENCH_FAULT_STALL_MS, default 5000; the scripted LLM of libs/testing, steps of `sleep 0.5` after
 * 200 ms of LLM) has stored an event again (its first `created_at` after the recovery; a run in the
 * middle of a step adds up to that step's length). Targets: ≤ 2 s after Redis (clients on the request
 * path reconnect every ≤ 1 s), ≤ 1 s after PostgreSQL (a fresh connection per pool checkout); runs
 * within the stall time. Printed, never asserted.
 */
const fs = require('node:fs');
const path = require('node:path');
const { Pool } = require('pg');
const { WebSocket } = require('ws');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { privatePostgres, privateRedis } = require('./lib/faults');
const { berthEnv } = require('./lib/berth');
const { killTree } = require('./lib/proctree');

const BENCH = 'faults';
const HOST = '127.0.0.1';
const API_KEY = 'bench-key';
const HEADERS = { 'X-Session-API-Key': API_KEY, 'content-type': 'application/json' };
const TARGETS_MS = { redis: 2000, postgres: 1000 };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

/** A socket following a conversation; `seen(text)` once a message with that text arrived. */
async function follow(url) {
  const texts = [];
  const ws = new WebSocket(url);
  ws.on('message', (data) => {
    const event = JSON.parse(data.toString());
    if (event.kind === 'MessageEvent') texts.push(JSON.stringify(event.llm_message ?? event));
  });
  ws.on('error', () => undefined);
  await new Promise((resolve, reject) => {
    ws.once('message', resolve);
    ws.once('close', () => reject(new Error('the socket closed before its first frame')));
  });
  return { ws, seen: (text) => texts.some((t) => t.includes(text)) };
}

/** `count` conversations of many slow steps on the scripted LLM; resolves once each has acted. */
async function startRuns(base, llm, name, count) {
  const ids = [];
  for (let i = 0; i < count; i++) {
    const text = `${name} run ${i} ${Date.now()}`;
    llm.script(text, (_req, turn) =>
      turn < 200
        ? { delayMs: 200, toolCalls: [{ name: 'terminal', arguments: { command: `sleep 0.5; echo step ${turn}`, timeout: 60 } }] }
        : { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
    );
    const res = await fetch(`${base}/api/conversations`, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: `/workspace/${name}-${i}` },
        initial_message: { role: 'user', content: [{ type: 'text', text }], run: true },
      }),
    });
    ids.push((await res.json()).id);
  }
  const acting = async (id) => (await (await fetch(`${base}/api/conversations/${id}/events/search?kind=ActionEvent&limit=1`, { headers: HEADERS })).json()).items.length > 0;
  if (!(await until(async () => (await Promise.all(ids.map(acting))).every(Boolean), 60_000))) throw new Error(`the ${name} runs did not start acting`);
  return ids;
}

/**
 * Milliseconds from `back` until the last of the runs stored an event again (the database's own
 * `created_at`, this machine's clock), NaN if one did not within the timeout.
 */
async function runsMoveAgain(pool, ids, back, timeoutMs = 60_000) {
  let firsts = [];
  const moved = await until(async () => {
    const { rows } = await pool.query(
      'SELECT conversation_id, extract(epoch FROM min(created_at)) * 1000 AS first FROM events WHERE conversation_id = ANY($1::uuid[]) AND created_at > to_timestamp($2 / 1000.0) GROUP BY 1',
      [ids, back],
    );
    firsts = rows.map((r) => Number(r.first));
    return rows.length === ids.length;
  }, timeoutMs);
  return moved ? Math.max(...firsts) - back : NaN;
}

async function run(ctx) {
  const { log } = ctx;
  const rounds = Number(process.env.BENCH_FAULT_ROUNDS || 3);
  const outageMs = Number(process.env.BENCH_OUTAGE_MS || 3000);
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing; run \`npm run build\``);
  const deps = { postgres: await privatePostgres(ctx), redis: await privateRedis(ctx) };
  const port = await freePort();
  const base = `http://${HOST}:${port}`;
  const runCount = Number(process.env.BENCH_FAULT_RUNS || 3);
  const stallMs = Number(process.env.BENCH_FAULT_STALL_MS || 5000);
  const env = berthEnv({
    BERTH_RUN_STALL_MS: String(stallMs),
    OH_SESSION_API_KEYS_0: API_KEY,
    LOG_LEVEL: 'error',
    BERTH_DATA_DIR: ctx.tmpdir('berth-bench-faults-'),
    BERTH_ROLE: 'gateway',
    BERTH_WARM_POOL_SIZE: '0',
    DATABASE_URL: deps.postgres.url,
    REDIS_URL: deps.redis.url,
  });
  const berth = spawnNode('berth[faults]', main, { args: ['--host', HOST, '--port', String(port)], env, cwd: ctx.root });
  ctx.defer('stop berth[faults]', () => berth.stop());
  await waitForHttp(berth, `${base}/ready`, { timeoutMs: 120_000 });
  const created = await fetch(`${base}/api/conversations`, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({ agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: 'http://127.0.0.1:9/v1' }, tools: [] }, workspace: { working_dir: '/workspace/project' } }),
  });
  const { id } = await created.json();
  const follower = await follow(`ws://${HOST}:${port}/sockets/events/${id}?session_api_key=${API_KEY}`);
  ctx.defer('close the follower', async () => follower.ws.close());

  const { LlmStub } = require(path.join(ctx.root, 'dist/libs/testing/src/index.js'));
  const llm = new LlmStub();
  await llm.start();
  ctx.defer('stop LLM stub', () => llm.stop());
  const workerPort = await freePort();
  const worker = spawnNode('worker[faults]', path.join(ctx.root, 'dist/apps/worker/src/main.js'), {
    args: ['--host', HOST, '--port', String(workerPort)],
    env: { ...env, BERTH_ROLE: 'worker' },
    cwd: ctx.root,
  });
  ctx.defer('stop worker[faults]', () => killTree(worker, { dir: env.BERTH_DATA_DIR, graceMs: 10_000 }));
  await waitForHttp(worker, `http://${HOST}:${workerPort}/ready`, { timeoutMs: 120_000 });
  // One connection, replaced after PostgreSQL restarts (the pool drops a broken one).
  const pool = new Pool({ connectionString: deps.postgres.url, max: 1 });
  pool.on('error', () => undefined);
  ctx.defer('close the pool', () => pool.end());
  log(`\n  [faults] private PostgreSQL and Redis, one gateway, one worker (BERTH_RUN_STALL_MS=${stallMs}); ${rounds} outages of ${outageMs} ms each, ${runCount} runs mid-run in each`);

  for (const name of ['redis', 'postgres']) {
    const requestMs = [];
    const eventMs = [];
    const runsMs = [];
    for (let round = 0; round < rounds; round++) {
      const runs = await startRuns(base, llm, `${name}-${round}`, runCount);
      await deps[name].stop();
      await sleep(outageMs);
      await deps[name].start();
      const back = Date.now();
      const requestAndEvent = (async () => {
        const requestOk = await until(async () => (await fetch(`${base}/api/conversations/${id}`, { headers: HEADERS })).status === 200, 60_000);
        requestMs.push(requestOk ? Date.now() - back : NaN);
        const text = `after ${name} outage ${round}`;
        const posted = await until(
          async () => (await fetch(`${base}/api/conversations/${id}/events`, { method: 'POST', headers: HEADERS, body: JSON.stringify({ role: 'user', content: [{ type: 'text', text }], run: false }) })).status === 200,
          60_000,
        );
        const delivered = posted && (await until(async () => follower.seen(text), 60_000));
        eventMs.push(delivered ? Date.now() - back : NaN);
      })();
      runsMs.push(await runsMoveAgain(pool, runs, back));
      await requestAndEvent;
      // Parked, so the next round's runs have the worker to themselves.
      await Promise.all(runs.map((run) => fetch(`${base}/api/conversations/${run}/pause`, { method: 'POST', headers: HEADERS })));
    }
    const worst = (xs) => Math.max(...xs);
    const fmt = (xs) => xs.map((x) => (Number.isNaN(x) ? 'never' : `${x} ms`)).join(', ');
    log(`  ${name} back → request succeeds: ${fmt(requestMs)}; → live socket gets a new event: ${fmt(eventMs)}; → every run moves again: ${fmt(runsMs)}`);
    ctx.report({ bench: BENCH, storage: 'postgres', target: `${name} outage → request ok ≤ ${TARGETS_MS[name]} ms`, measured: `max ${worst(requestMs)} ms`, ok: worst(requestMs) <= TARGETS_MS[name] });
    ctx.report({ bench: BENCH, storage: 'postgres', target: `${name} outage → socket event ≤ ${TARGETS_MS[name]} ms`, measured: `max ${worst(eventMs)} ms`, ok: worst(eventMs) <= TARGETS_MS[name] });
    ctx.report({ bench: BENCH, storage: 'postgres', target: `${name} outage → every run moves ≤ ${stallMs} ms (stall time)`, measured: `max ${worst(runsMs)} ms`, ok: worst(runsMs) <= stallMs });
  }
}

module.exports = { run };
