'use strict';
/** Starting Berth itself for a benchmark. */
const fs = require('node:fs');
const path = require('node:path');
const storage = require('./storage');

/** The bench process's environment without any Berth setting, plus `extra` (so runs are reproducible). */
function berthEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OH_|BERTH_|DATABASE_URL$|REDIS_URL$|SESSION_API_KEY$|LOG_LEVEL$|DEBUG$|PORT$|HOST$|NODE_OPTIONS$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, NODE_ENV: 'production', ...extra };
}

/**
 * How `npm start` runs the gateway: the variables and Node options of package.json's `start` script
 * (`[NAME=value…] node [options] dist/…/main.js`), so that a bench measures what a user starts.
 * BENCH_BERTH_NODE_ARGS (space separated) replaces the options, BENCH_BERTH_ENV (a JSON object of
 * settings) adds to the environment: for measuring one setting against another, never for the
 * published figures.
 */
function berthStart(root) {
  const script = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts?.start ?? '';
  const words = script.trim().split(/\s+/);
  const env = {};
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0] ?? '')) {
    const word = words.shift();
    env[word.slice(0, word.indexOf('='))] = word.slice(word.indexOf('=') + 1);
  }
  const main = words.findIndex((w) => w.endsWith('.js'));
  let nodeArgs = words[0] === 'node' && main > 0 ? words.slice(1, main) : [];
  if (process.env.BENCH_BERTH_NODE_ARGS !== undefined) nodeArgs = process.env.BENCH_BERTH_NODE_ARGS.split(/\s+/).filter(Boolean);
  if (process.env.BENCH_BERTH_ENV) Object.assign(env, JSON.parse(process.env.BENCH_BERTH_ENV));
  return { nodeArgs, env };
}

/**
 * Storage for one Berth child: nothing for 'embedded'; for 'postgres' a throw-away database (and a
 * Redis key prefix when Redis answers), removed when the run ends. Null when PostgreSQL is down.
 */
async function prepareStorage(ctx, mode, name = `berth_bench_${process.pid}`) {
  const { options, log } = ctx;
  if (mode === 'embedded') return { label: 'embedded (PGlite, in-process bus)', env: {} };
  const pgProblem = await storage.pgProblem(options.pgAdminUrl);
  if (pgProblem) {
    log(`  postgres: skipped — PostgreSQL not reachable at ${options.pgAdminUrl}: ${pgProblem}`);
    return null;
  }
  const db = await storage.createDatabase(options.pgAdminUrl, name);
  ctx.defer(`drop database ${db.name}`, () => db.drop());
  const env = { DATABASE_URL: db.url };
  let label = `PostgreSQL (db ${db.name})`;
  const redisProblem = await storage.redisProblem(options.redisUrl);
  if (redisProblem) {
    log(`  postgres: Redis not reachable at ${options.redisUrl} (${redisProblem}); using the in-process queue and bus`);
    label += ' + in-process bus';
  } else {
    const prefix = name;
    env.REDIS_URL = options.redisUrl;
    env.BERTH_QUEUE_PREFIX = prefix;
    ctx.defer(`delete redis keys ${prefix}:*`, () => storage.redisDeletePrefix(options.redisUrl, prefix));
    label += ` + Redis (prefix ${prefix})`;
  }
  return { label, env, db };
}

module.exports = { berthEnv, berthStart, prepareStorage };
