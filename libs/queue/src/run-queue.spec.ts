import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { InProcessRunLock, RedisRunLock, RunLock } from './run-lock';
import { BullRunQueue, InProcessRunQueue, RunQueue, RunRequest } from './run-queue';
import { until } from '@berth/testing';

const REDIS_URL = process.env.BERTH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const queues: [string, () => RunQueue][] = [
  ['in-process', () => new InProcessRunQueue()],
  ['BullMQ', () => new BullRunQueue(REDIS_URL, `berth-spec-${randomUUID()}`, 2000)],
];

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** One contract, two queues: what the workers rely on whichever backs them. */
describe.each(queues)('RunQueue contract (%s)', (_name, make) => {
  let queue: RunQueue;
  beforeEach(() => {
    queue = make();
  });
  afterEach(async () => {
    await queue.close();
  });

  it('hands every enqueued run to the handler', async () => {
    const seen: RunRequest[] = [];
    await queue.consume(async (run) => void seen.push(run), 4);
    const runs = Array.from({ length: 5 }, () => ({ tenantId: randomUUID(), conversationId: randomUUID() }));
    for (const run of runs) await queue.enqueue(run);
    await until(() => seen.length === 5, 'five runs handled');
    expect(seen.map((r) => r.conversationId).sort()).toEqual(runs.map((r) => r.conversationId).sort());
    expect(seen[0]).toEqual(runs.find((r) => r.conversationId === seen[0].conversationId));
  });

  it('runs at most `concurrency` handlers at once', async () => {
    let active = 0;
    let peak = 0;
    let done = 0;
    const gate = deferred();
    await queue.consume(async () => {
      active++;
      peak = Math.max(peak, active);
      await gate.promise;
      active--;
      done++;
    }, 2);
    for (let i = 0; i < 6; i++) await queue.enqueue({ tenantId: 't', conversationId: randomUUID() });
    await until(() => active === 2, 'two handlers active');
    await new Promise((r) => setTimeout(r, 200));
    expect(active).toBe(2);
    gate.resolve();
    await until(() => done === 6, 'all six handled');
    expect(peak).toBe(2);
  });

  it('keeps runs enqueued before anyone consumes', async () => {
    const id = randomUUID();
    await queue.enqueue({ tenantId: 't', conversationId: id });
    const seen: string[] = [];
    await queue.consume(async (run) => void seen.push(run.conversationId), 1);
    await until(() => seen.length === 1, 'the early run handled');
    expect(seen).toEqual([id]);
  });

  it('answers ping', async () => {
    await expect(queue.ping()).resolves.toBeUndefined();
  });
});

const locks: [string, (ttlMs: number) => RunLock][] = [
  ['in-process', () => new InProcessRunLock()],
  ['Redis', (ttlMs) => new RedisRunLock(REDIS_URL, ttlMs, `berth-spec-${randomUUID()}`)],
];

describe.each(locks)('RunLock contract (%s)', (_name, make) => {
  let lock: RunLock;
  beforeEach(() => {
    lock = make(1000);
  });
  afterEach(async () => {
    await lock.close();
  });

  it('grants one holder per conversation and hands over on release', async () => {
    const id = randomUUID();
    const first = await lock.acquire(id, 0);
    expect(first).not.toBeNull();
    expect(await lock.acquire(id, 0)).toBeNull();
    expect(await lock.acquire(randomUUID(), 0)).not.toBeNull();
    const waiting = lock.acquire(id, 5000);
    await first!.release();
    expect(await waiting).not.toBeNull();
  });

  it('keeps a live holder\'s lease beyond its ttl (renewal)', async () => {
    const id = randomUUID();
    const lease = await lock.acquire(id, 0);
    await new Promise((r) => setTimeout(r, 2500));
    expect(await lock.acquire(id, 0)).toBeNull();
    expect(lease!.lost.aborted).toBe(false);
    expect(await lock.isHeld(id)).toBe(true);
    await lease!.release();
    expect(await lock.isHeld(id)).toBe(false);
  });
});

describe('RunLock (Redis): a holder whose lease went', () => {
  it('is told it lost the lease when another holder has it (a Redis that lost its data, or a lapsed lease)', async () => {
    const prefix = `berth-spec-${randomUUID()}`;
    const lock = new RedisRunLock(REDIS_URL, 900, prefix);
    const other = new RedisRunLock(REDIS_URL, 900, prefix);
    const redis = new Redis(REDIS_URL);
    const id = randomUUID();
    const lease = await lock.acquire(id, 0);
    await redis.del(`${prefix}:run-lock:${id}`);
    const successor = await other.acquire(id, 0);
    expect(successor).not.toBeNull();
    await until(() => lease!.lost.aborted, 'the first lease lost');
    // Its release leaves the successor's lease alone.
    await lease!.release();
    expect(await other.isHeld(id)).toBe(true);
    expect(successor!.lost.aborted).toBe(false);
    await successor!.release();
    redis.disconnect();
    await lock.close();
    await other.close();
  });

  it('counts it lost once no renewal succeeded for a whole ttl (a frozen or unreachable Redis)', async () => {
    const lock = new RedisRunLock(REDIS_URL, 600, `berth-spec-${randomUUID()}`);
    const lease = await lock.acquire(randomUUID(), 0);
    await lock.close(); // its renewals fail from now on
    expect(lease!.lost.aborted).toBe(false);
    await until(() => lease!.lost.aborted, 'the unrenewed lease lost');
    expect((lease!.lost.reason as Error).message).toMatch(/not renewed/);
  });
});

describe('RunLock (Redis): a dead holder', () => {
  it('lets its lease lapse after the ttl', async () => {
    const prefix = `berth-spec-${randomUUID()}`;
    const dead = new RedisRunLock(REDIS_URL, 800, prefix);
    const alive = new RedisRunLock(REDIS_URL, 800, prefix);
    const id = randomUUID();
    expect(await dead.acquire(id, 0)).not.toBeNull();
    await dead.close(); // its renewals stop, as when a worker is killed
    expect(await alive.acquire(id, 0)).toBeNull();
    const taken = await alive.acquire(id, 5000);
    expect(taken).not.toBeNull();
    await taken!.release();
    await alive.close();
  });
});

describe("RunQueue (BullMQ): the reconciler's wake-ups", () => {
  it('queues one per conversation while one waits, and another once it was taken', async () => {
    const queue = new BullRunQueue(REDIS_URL, `berth-spec-${randomUUID()}`, 2000);
    const run = { tenantId: randomUUID(), conversationId: randomUUID() };
    await queue.enqueue(run, { once: true });
    await queue.enqueue(run, { once: true });
    expect(await queue.queue.getJobCountByTypes('waiting')).toBe(1);
    const seen: RunRequest[] = [];
    await queue.consume(async (r) => void seen.push(r), 1);
    await until(() => seen.length === 1, 'the wake-up handled');
    await until(async () => (await queue.queue.getJobCountByTypes('waiting', 'active', 'completed')) === 0, 'the wake-up removed');
    await queue.enqueue(run, { once: true });
    await until(() => seen.length === 2, 'the next wake-up handled');
    await queue.close();
  });
});
