import { Client } from 'pg';

/**
 * One fresh PostgreSQL database per test run (dropped by global-teardown), on the server given by
 * TEST_POSTGRES_URL (default: the local one). Tests read its URL from BERTH_TEST_DATABASE_URL.
 */
export default async function globalSetup(): Promise<void> {
  const admin = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `berth_test_${process.pid}_${Date.now()}`;
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
}
