'use strict';
/**
 * Berth benchmarks — `npm run bench` (builds first via prebench, then runs this file).
 *
 *   node bench/run.js [name-filter…]     e.g. `node bench/run.js gateway`
 *
 * Runs every bench/*.bench.js in file-name order. Each one is a CommonJS module exporting
 * `async function run(ctx)`; it prints its own figures and adds rows to the final summary with
 * `ctx.report({ bench, storage, target, measured, ok })`. Figures are printed, never asserted: ✓/✗
 * are informational and the exit code is non-zero only if a benchmark crashes.
 *
 * ctx (see makeContext below): ctx.options (parsed BENCH_* variables), ctx.root (repository root),
 * ctx.log(...), ctx.tmpdir(prefix) (removed at exit), ctx.defer(label, fn) (async clean-up run at
 * exit, last-registered first, also on SIGINT/SIGTERM and after a crash), ctx.report(row).
 * Reusable helpers live in bench/lib: load.js (load generator), stats.js (percentiles, tables),
 * proc.js (free ports, server children, readiness, CPU accounting), storage.js (throw-away
 * PostgreSQL database / Redis prefix), cpuprofile.js (profile summaries).
 *
 * Environment (all optional):
 *   BENCH_STORAGE      postgres | embedded | both (default both; postgres is skipped if unreachable)
 *   BENCH_DURATION_MS  measured duration of each load scenario (default 5000)
 *   BENCH_WARMUP_MS    unrecorded warm-up before each load scenario (default 1000)
 *   BENCH_CONCURRENCY  concurrent request loops / keep-alive sockets (default 32)
 *   BENCH_CONVERSATIONS conversations seeded for the paging benchmark (default 2000)
 *   BENCH_PG_URL       admin URL for creating the bench database
 *                      (default postgresql://postgres@127.0.0.1:5432/postgres)
 *   BENCH_REDIS_URL    Redis for the postgres mode (default redis://127.0.0.1:6379)
 *   BENCH_CPU_PROF     1 = CPU-profile the Berth child during the authenticated-count load and print
 *                      the top frames; the .cpuprofile files are kept in a printed directory
 *   BENCH_RESULTS      where the Markdown results go (default bench/results.md when every bench
 *                      runs; a run with a name filter writes none unless this is set)
 *
 * A row may also carry `reference` (the reference agent server's figure, same run) and `anchor` (the
 * published figure it is held against, bench/lib/anchors.js); both go to the results file.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { table } = require('./lib/stats');
const { writeResults } = require('./lib/results');

const ROOT = path.resolve(__dirname, '..');

function intEnv(name, fallback, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    console.error(`bench: ${name} must be an integer ≥ ${min}, got "${raw}"`);
    process.exit(2);
  }
  return v;
}

function parseOptions() {
  const storageRaw = (process.env.BENCH_STORAGE || 'both').toLowerCase();
  const storage = { both: ['postgres', 'embedded'], postgres: ['postgres'], embedded: ['embedded'] }[storageRaw];
  if (!storage) {
    console.error(`bench: BENCH_STORAGE must be postgres, embedded or both, got "${storageRaw}"`);
    process.exit(2);
  }
  return {
    storage,
    durationMs: intEnv('BENCH_DURATION_MS', 5000, 100),
    warmupMs: intEnv('BENCH_WARMUP_MS', 1000, 0),
    concurrency: intEnv('BENCH_CONCURRENCY', 32, 1),
    conversations: intEnv('BENCH_CONVERSATIONS', 2000, 1),
    pgAdminUrl: process.env.BENCH_PG_URL || 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
    cpuProf: ['1', 'true', 'yes'].includes((process.env.BENCH_CPU_PROF || '').toLowerCase()),
  };
}

function makeContext(options) {
  const cleanups = [];
  const reports = [];
  const ctx = {
    root: ROOT,
    options,
    log: (...args) => console.log(...args),
    defer(label, fn) {
      cleanups.push({ label, fn });
    },
    tmpdir(prefix = 'berth-bench-') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      ctx.defer(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    report(row) {
      reports.push(row);
    },
    reports,
    async cleanup() {
      while (cleanups.length) {
        const { label, fn } = cleanups.pop();
        try {
          await fn();
        } catch (err) {
          console.error(`bench: clean-up "${label}" failed: ${err.message}`);
        }
      }
    },
  };
  return ctx;
}

function benchFiles(filters) {
  return fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.js'))
    .filter((f) => !filters.length || filters.some((x) => f.includes(x)))
    .sort();
}

async function main() {
  const options = parseOptions();
  const ctx = makeContext(options);
  let stopping = false;
  const onSignal = (sig) => {
    if (stopping) process.exit(130);
    stopping = true;
    console.error(`\nbench: ${sig}, cleaning up…`);
    ctx.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const filters = process.argv.slice(2);
  const files = benchFiles(filters);
  const cpus = os.cpus();
  let fastifyVersion = '?';
  try {
    fastifyVersion = require('fastify/package.json').version;
  } catch {
    /* not installed */
  }
  const machine =
    `${cpus.length} CPU(s) ${cpus[0] ? `(${cpus[0].model.trim()})` : ''}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
    `${os.type()} ${os.release()}, Node ${process.version}, Fastify ${fastifyVersion}`;
  const optionsLine =
    `storage=${options.storage.join('+')} duration=${options.durationMs} ms warm-up=${options.warmupMs} ms ` +
    `concurrency=${options.concurrency} conversations=${options.conversations}${options.cpuProf ? ' cpu-prof=on' : ''}`;
  console.log('Berth benchmarks');
  console.log(`  machine: ${machine}`);
  console.log(`  options: ${optionsLine}`);
  console.log(`  benches: ${files.join(', ') || '(none)'}`);

  const startedAt = new Date();
  const started = startedAt.getTime();
  const crashed = [];
  for (const file of files) {
    console.log(`\n== ${file} ==`);
    try {
      const mod = require(path.join(__dirname, file));
      if (typeof mod.run !== 'function') throw new Error(`${file} does not export run(ctx)`);
      await mod.run(ctx);
    } catch (err) {
      crashed.push(file);
      console.error(`bench: ${file} crashed: ${err.stack || err.message}`);
    } finally {
      await ctx.cleanup();
    }
  }

  if (ctx.reports.length) {
    console.log('\nSummary (informational; targets are not asserted; [disturbed] = other processes were busy, rerun on a quiet machine)');
    console.log(
      table(
        ['bench', 'storage', 'target', 'measured', ''],
        ctx.reports.map((r) => [r.bench, r.storage || '', r.target, r.reference ? `${r.measured}; reference ${r.reference}` : r.measured, r.ok === undefined || r.ok === null ? '?' : r.ok ? '✓' : '✗']),
      ),
    );
  }
  const seconds = (Date.now() - started) / 1000;
  const resultsFile = process.env.BENCH_RESULTS || (filters.length ? '' : path.join(__dirname, 'results.md'));
  if (resultsFile) {
    const environment = Object.keys(process.env)
      .filter((name) => name.startsWith('BENCH_') && name !== 'BENCH_RESULTS')
      .sort()
      .map((name) => `${name}=${process.env[name]}`);
    writeResults(resultsFile, { startedAt, seconds, machine, options: optionsLine, environment, benches: files, crashed }, ctx.reports);
    console.log(`\nbench: results written to ${resultsFile}`);
  }
  console.log(`\nbench: done in ${seconds.toFixed(1)} s${crashed.length ? `, ${crashed.length} bench file(s) crashed` : ''}`);
  process.exitCode = crashed.length ? 1 : 0;
}

main().catch((err) => {
  console.error(`bench: ${err.stack || err.message}`);
  process.exit(1);
});
