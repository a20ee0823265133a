import { Client } from 'pg';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,19}$/;
const KEY_PREFIX = /^[A-Za-z0-9_.-]{1,60}$/;

/**
 * One fresh PostgreSQL database per test run (dropped by global-teardown), on the server given by
 * TEST_POSTGRES_URL (default: the local one), named after TEST_DATABASE_PREFIX (default berth_test);
 * tests read its URL from BERTH_TEST_DATABASE_URL. Redis keys of the run (queue prefixes, see
 * testQueuePrefix) start with TEST_REDIS_PREFIX (default berth-test) and the run's id, and are
 * removed by global-teardown.
 */
export default async function globalSetup(): Promise<void> {
  const admin = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const databasePrefix = process.env.TEST_DATABASE_PREFIX ?? 'berth_test';
  const keyPrefix = process.env.TEST_REDIS_PREFIX ?? 'berth-test';
  if (!IDENTIFIER.test(databasePrefix)) throw new Error(`TEST_DATABASE_PREFIX must match ${IDENTIFIER}, got "${databasePrefix}"`);
  if (!KEY_PREFIX.test(keyPrefix)) throw new Error(`TEST_REDIS_PREFIX must match ${KEY_PREFIX}, got "${keyPrefix}"`);
  const runId = `${process.pid}_${Date.now()}`;
  const name = `${databasePrefix}_${runId}`;
  const client = new Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE "${name}"`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  process.env.BERTH_TEST_DATABASE_URL = url.toString();
  process.env.BERTH_TEST_DATABASE_NAME = name;
  process.env.BERTH_TEST_ADMIN_URL = admin;
  process.env.BERTH_TEST_REDIS_URL ??= process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  process.env.BERTH_TEST_KEY_PREFIX = `${keyPrefix}-${runId}`;
}
