'use strict';
/**
 * Throw-away storage for a bench run: a fresh PostgreSQL database (created and dropped with `pg`)
 * and a Redis key prefix (probed and cleaned with `ioredis`). Both packages are app dependencies.
 */
const { Client } = require('pg');

function withDatabase(url, database) {
  const u = new URL(url);
  u.pathname = '/' + database;
  return u.toString();
}

async function pgConnect(adminUrl, timeoutMs = 3000) {
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Resolves null if PostgreSQL at `adminUrl` answers, else the reason. */
async function pgProblem(adminUrl) {
  try {
    const c = await pgConnect(adminUrl);
    await c.query('SELECT 1');
    await c.end();
    return null;
  } catch (err) {
    return err.message || String(err);
  }
}

/** Creates database `name` (must be a plain identifier); returns { url, drop() }. */
async function createDatabase(adminUrl, name) {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const c = await pgConnect(adminUrl);
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  let dropped = false;
  return {
    name,
    url: withDatabase(adminUrl, name),
    async drop() {
      if (dropped) return;
      dropped = true;
      const d = await pgConnect(adminUrl);
      try {
        await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await d.end();
      }
    },
  };
}

function redisClient(url) {
  const { Redis } = require('ioredis');
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => undefined);
  return r;
}

/** Resolves null if Redis at `url` answers PING, else the reason. */
async function redisProblem(url) {
  const r = redisClient(url);
  try {
    await r.connect();
    const pong = await r.ping();
    return pong === 'PONG' ? null : `unexpected PING reply ${pong}`;
  } catch (err) {
    return err.message || String(err);
  } finally {
    r.disconnect();
  }
}

/** Deletes every key under `${prefix}:`; returns how many. */
async function redisDeletePrefix(url, prefix) {
  if (!prefix || /[*?[\]]/.test(prefix)) throw new Error(`bad redis prefix ${prefix}`);
  const r = redisClient(url);
  let deleted = 0;
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) deleted += await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return deleted;
}

module.exports = { pgProblem, createDatabase, redisProblem, redisDeletePrefix, withDatabase };
