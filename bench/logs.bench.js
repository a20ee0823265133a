'use strict';
/**
 * Cost of the logs (run by bench/run.js).
 *
 * 1. CPU per access line in this process: Berth's logger (redaction on) and plain pino, writing
 *    to /dev/null — a figure that holds on a busy machine.
 * 2. Berth on the embedded default as a child process, its
 * stdout piped to this process as a log collector reads it, once with LOG_LEVEL=warn (no access
 * line) and once with LOG_LEVEL=info (the default: a JSON access line per request). For each:
 * closed-loop load on authenticated GET /api/conversations/count, then req/s, latency, the server's
 * CPU per request, log bytes per request and RSS.
 * BENCH_LOGS_MAIN (a main.js of another build, e.g. one from before structured logs) adds a third
 * run with that gateway at LOG_LEVEL=info, for comparing builds; never for the published figures.
 * Budget (set here, not by the issue): the access log costs at most 10 % of the requests per second.
 */
const fs = require('node:fs');
const path = require('node:path');
const { runLoad } = require('./lib/load');
const { freePort, spawnNode, waitForHttp, rssBytes } = require('./lib/proc');
const { ms, int, table } = require('./lib/stats');
const { berthEnv } = require('./lib/berth');

const BENCH = 'logs';
const API_KEY = 'bench-logs-key';
const HOST = '127.0.0.1';
const TARGET_RATIO = 0.9;

const LINES = 200_000;

/** µs of CPU per access line written by `logger` (after a warm-up). */
function cpuPerLine(logger) {
  const access = logger.child({ context: 'Access' });
  const line = () => ({ method: 'GET', route: '/api/conversations/:conversation_id', status: 200, duration_ms: 1.3, request_id: 'cfd0c3c7-cd54-4666-b338-a8bebbadc84a', tenant_id: '00000000-0000-4000-8000-000000000001', key_id: 'env:0', conversation_id: '0ea9b4a5-0000-4000-8000-000000000000' });
  for (let i = 0; i < LINES / 10; i++) access.info(line(), 'request');
  const start = process.cpuUsage();
  for (let i = 0; i < LINES; i++) access.info(line(), 'request');
  const used = process.cpuUsage(start);
  return (used.user + used.system) / LINES;
}

function linesBench(ctx) {
  const { createLogger } = require(path.join(ctx.root, 'libs/logging'));
  const pino = require('pino');
  const fd = fs.openSync('/dev/null', 'w');
  const sink = { write: (text) => fs.writeSync(fd, text) };
  try {
    const berth = cpuPerLine(createLogger('json', 'info', sink));
    const plain = cpuPerLine(pino({}, sink));
    const off = cpuPerLine(createLogger('json', 'warn', sink));
    ctx.log(`  CPU per access line: ${berth.toFixed(2)} µs (plain pino ${plain.toFixed(2)} µs; below the level ${off.toFixed(2)} µs)`);
    ctx.report({ bench: BENCH, storage: '-', target: 'CPU per access line (informational)', measured: `${berth.toFixed(2)} µs`, ok: null });
  } finally {
    fs.closeSync(fd);
  }
}

async function measure(ctx, label, main, logLevel) {
  const { options } = ctx;
  const dataDir = ctx.tmpdir('berth-bench-logs-');
  const port = await freePort();
  const env = berthEnv({ OH_SESSION_API_KEYS_0: API_KEY, LOG_LEVEL: logLevel, BERTH_DATA_DIR: dataDir, BERTH_WARM_POOL_SIZE: '0', BERTH_REAPER_INTERVAL_MS: '0' });
  const berth = spawnNode(`berth[${label}]`, main, { args: ['--host', HOST, '--port', String(port)], env, cwd: ctx.root });
  ctx.defer(`stop berth[${label}]`, () => berth.stop());
  let logBytes = 0;
  berth.child.stdout.on('data', (chunk) => (logBytes += chunk.length));
  await waitForHttp(berth, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  const target = { host: HOST, port, pid: berth.pid };
  const load = { concurrency: options.concurrency, durationMs: options.durationMs, warmupMs: options.warmupMs };
  const before = logBytes;
  const result = await runLoad(target, { ...load, path: '/api/conversations/count', headers: { 'X-Session-API-Key': API_KEY } });
  // Bytes over every request sent, warm-up included (each one logs a line).
  const sent = result.requests + Math.round((result.rps * options.warmupMs) / 1000);
  const perRequest = (logBytes - before) / sent;
  const rss = rssBytes(berth.pid);
  await berth.stop();
  // Another process busy on the cores makes req/s meaningless (two cores shared): flagged, as the gateway bench does.
  const disturbed = result.otherCpu > 0.15 ? ' [disturbed]' : '';
  return { label: label + disturbed, rps: result.rps, latency: result.latency, cpuMsPerRequest: result.serverCpu !== null ? (result.serverCpu * 1000) / result.rps : NaN, perRequest, rss, errors: result.errors };
}

async function run(ctx) {
  linesBench(ctx);
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  const runs = [await measure(ctx, 'LOG_LEVEL=warn', main, 'warn'), await measure(ctx, 'LOG_LEVEL=info', main, 'info')];
  if (process.env.BENCH_LOGS_MAIN) runs.push(await measure(ctx, `other build, info`, path.resolve(process.env.BENCH_LOGS_MAIN), 'info'));
  ctx.log(
    table(
      ['gateway', 'req/s', 'p50', 'p99', 'server CPU/req', 'log bytes/req', 'RSS MiB', 'errors'],
      runs.map((r) => [r.label, int(r.rps), `${ms(r.latency.p50)} ms`, `${ms(r.latency.p99)} ms`, `${ms(r.cpuMsPerRequest)} ms`, int(r.perRequest), int(r.rss / 2 ** 20), int(r.errors)]),
    ),
  );
  const ratio = runs[1].rps / runs[0].rps;
  ctx.log(`  access log on (info) vs off (warn): ${ratio.toFixed(2)}× the requests per second`);
  ctx.report({ bench: BENCH, storage: 'embedded', target: `info ≥ ${TARGET_RATIO}× warn req/s`, measured: `${ratio.toFixed(2)}×`, ok: ratio >= TARGET_RATIO });
}

module.exports = { run };
