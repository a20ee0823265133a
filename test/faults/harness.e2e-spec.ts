import { Client } from 'pg';
import { Redis } from 'ioredis';
import { FaultLab } from '../support/faults';

/** The fault harness does what the fault suites rely on: stop, kill -9, freeze and restart, with or without data. */
describe('fault harness', () => {
  const lab = new FaultLab();
  afterAll(() => lab.close());

  it('restarts Redis empty, or with its data when persistent', async () => {
    const volatile = await lab.startRedis();
    const persistent = await lab.startRedis({ persistent: true });
    for (const redis of [volatile, persistent]) {
      const client = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true });
      client.on('error', () => undefined);
      await client.connect();
      await client.set('k', 'v');
      client.disconnect();
      await redis.kill();
      expect(redis.up).toBe(false);
      await redis.start();
      const again = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      again.on('error', () => undefined);
      expect(await again.get('k')).toBe(redis === persistent ? 'v' : null);
      again.disconnect();
    }
  });

  it('freezes PostgreSQL (queries wait), thaws it, and keeps its data across kill -9', async () => {
    const postgres = await lab.startPostgres();
    const client = new Client({ connectionString: postgres.url });
    await client.connect();
    await client.query('CREATE TABLE t (v int); INSERT INTO t VALUES (1)');
    postgres.freeze();
    let answered = false;
    const pending = client.query('SELECT v FROM t').then((r) => ((answered = true), r));
    await new Promise((r) => setTimeout(r, 500));
    expect(answered).toBe(false);
    postgres.thaw();
    expect((await pending).rows).toEqual([{ v: 1 }]);
    await client.end();
    await postgres.kill();
    await postgres.start();
    const again = new Client({ connectionString: postgres.url });
    await again.connect();
    expect((await again.query('SELECT v FROM t')).rows).toEqual([{ v: 1 }]);
    await again.end();
  });

  it('runs a gateway and a worker against them, and ends them', async () => {
    const gateway = await lab.startGateway();
    const worker = await lab.startWorker();
    expect((await fetch(`${gateway.url}/ready`)).status).toBe(200);
    expect((await fetch(`${worker.url}/ready`)).status).toBe(200);
    expect(await worker.kill()).toBe('SIGKILL');
    expect(await gateway.stop()).toBe('SIGTERM');
  });
});
