'use strict';
/** Starting Berth itself for a benchmark. */

/** The bench process's environment without any Berth setting, plus `extra` (so runs are reproducible). */
function berthEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OH_|BERTH_|DATABASE_URL$|REDIS_URL$|SESSION_API_KEY$|LOG_LEVEL$|DEBUG$|PORT$|HOST$|NODE_OPTIONS$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, NODE_ENV: 'production', ...extra };
}

module.exports = { berthEnv };
