'use strict';
/**
 * Recovery after an outage (run by bench/run.js): a gateway on a PostgreSQL and a Redis of the
 * bench's own (test/support/faults.ts does the same for the fault tests); each is stopped for
 * BENCH_OUTAGE_MS (default 3000), then started again, BENCH_FAULT_ROUNDS times (default 3). Measured
 * from the moment the dependency accepts clients again: until an API request succeeds, and until a
 * socket that stayed open receives an event posted after the recovery. Targets: ≤ 2 s after Redis
 * (clients on the request path reconnect every ≤ 1 s), ≤ 1 s after PostgreSQL (a fresh connection per
 * pool checkout). Printed, never asserted.
 */
const fs = require('node:fs');
const path = require('node:path');
const { WebSocket } = require('ws');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { privatePostgres, privateRedis } = require('./lib/faults');
const { berthEnv } = require('./lib/berth');

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

async function run(ctx) {
  const { log } = ctx;
  const rounds = Number(process.env.BENCH_FAULT_ROUNDS || 3);
  const outageMs = Number(process.env.BENCH_OUTAGE_MS || 3000);
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing; run \`npm run build\``);
  const deps = { postgres: await privatePostgres(ctx), redis: await privateRedis(ctx) };
  const port = await freePort();
  const base = `http://${HOST}:${port}`;
  const env = berthEnv({
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
  log(`\n  [faults] private PostgreSQL and Redis, one gateway; ${rounds} outages of ${outageMs} ms each`);

  for (const name of ['redis', 'postgres']) {
    const requestMs = [];
    const eventMs = [];
    for (let round = 0; round < rounds; round++) {
      await deps[name].stop();
      await sleep(outageMs);
      await deps[name].start();
      const back = Date.now();
      const requestOk = await until(async () => (await fetch(`${base}/api/conversations/${id}`, { headers: HEADERS })).status === 200, 60_000);
      requestMs.push(requestOk ? Date.now() - back : NaN);
      const text = `after ${name} outage ${round}`;
      const posted = await until(
        async () => (await fetch(`${base}/api/conversations/${id}/events`, { method: 'POST', headers: HEADERS, body: JSON.stringify({ role: 'user', content: [{ type: 'text', text }], run: false }) })).status === 200,
        60_000,
      );
      const delivered = posted && (await until(async () => follower.seen(text), 60_000));
      eventMs.push(delivered ? Date.now() - back : NaN);
    }
    const worst = (xs) => Math.max(...xs);
    const fmt = (xs) => xs.map((x) => (Number.isNaN(x) ? 'never' : `${x} ms`)).join(', ');
    log(`  ${name} back → request succeeds: ${fmt(requestMs)}; → live socket gets a new event: ${fmt(eventMs)}`);
    ctx.report({ bench: BENCH, storage: 'postgres', target: `${name} outage → request ok ≤ ${TARGETS_MS[name]} ms`, measured: `max ${worst(requestMs)} ms`, ok: worst(requestMs) <= TARGETS_MS[name] });
    ctx.report({ bench: BENCH, storage: 'postgres', target: `${name} outage → socket event ≤ ${TARGETS_MS[name]} ms`, measured: `max ${worst(eventMs)} ms`, ok: worst(eventMs) <= TARGETS_MS[name] });
  }
}

module.exports = { run };
