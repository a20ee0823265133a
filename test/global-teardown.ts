import { Client } from 'pg';

export default async function globalTeardown(): Promise<void> {
  const name = process.env.BERTH_TEST_DATABASE_NAME;
  const admin = process.env.BERTH_TEST_ADMIN_URL;
  if (!name || !admin) return;
  const client = new Client({ connectionString: admin });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await client.end();
}
