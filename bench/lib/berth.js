'use strict';
/** Starting Berth itself for a benchmark. */
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

module.exports = { berthEnv, prepareStorage };
