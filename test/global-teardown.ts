import { Redis } from 'ioredis';
import { Client } from 'pg';

export default async function globalTeardown(): Promise<void> {
  await dropDatabase();
  await removeRedisKeys();
}

async function dropDatabase(): Promise<void> {
  const name = process.env.BERTH_TEST_DATABASE_NAME;
  const admin = process.env.BERTH_TEST_ADMIN_URL;
  if (!name || !admin) return;
  const client = new Client({ connectionString: admin });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await client.end();
}

/** Queues and other keys the run left in the shared Redis (BullMQ keeps a queue's keys without expiry). */
async function removeRedisKeys(): Promise<void> {
  const prefix = process.env.BERTH_TEST_KEY_PREFIX;
  const url = process.env.BERTH_TEST_REDIS_URL;
  if (!prefix || !url) return;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}-*`, 'COUNT', 1000);
      if (keys.length) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
