import { randomUUID } from 'node:crypto';
import { BullJobQueue, InProcessJobQueue, JobQueue, RetryLater } from './job-queue';
import { until } from '@berth/testing';

const REDIS_URL = process.env.BERTH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Job {
  n: number;
}

const queues: [string, () => JobQueue<Job>][] = [
  ['in-process', () => new InProcessJobQueue<Job>()],
  ['BullMQ', () => new BullJobQueue<Job>('spec-jobs', REDIS_URL, `berth-spec-${randomUUID()}`)],
];

/** One contract, two queues: what webhook delivery relies on whichever backs it. */
describe.each(queues)('JobQueue contract (%s)', (_name, make) => {
  let queue: JobQueue<Job>;
  const noBackoff = { concurrency: 2, backoffMs: () => 0 };
  beforeEach(() => {
    queue = make();
  });
  afterEach(async () => {
    await queue.close();
  });

  it('runs jobs, delayed ones after their delay', async () => {
    const seen: [number, number][] = [];
    const start = Date.now();
    await queue.consume(async (job) => void seen.push([job.n, Date.now() - start]), noBackoff);
    await queue.add({ n: 1 }, { attempts: 1, delayMs: 300 });
    await queue.add({ n: 2 }, { attempts: 1 });
    await until(() => seen.length === 2, 'both jobs');
    expect(seen.map(([n]) => n)).toEqual([2, 1]);
    expect(seen[1][1]).toBeGreaterThanOrEqual(250);
  });

  it('keeps one job per id while it waits, and promotes a delayed one', async () => {
    const seen: number[] = [];
    await queue.add({ n: 1 }, { jobId: 'same', attempts: 1, delayMs: 60_000 });
    await queue.add({ n: 2 }, { jobId: 'same', attempts: 1, delayMs: 60_000 });
    expect(await queue.size()).toBe(1);
    await queue.consume(async (job) => void seen.push(job.n), noBackoff);
    await queue.promote('same');
    await until(() => seen.length === 1, 'the promoted job');
    expect(seen).toEqual([1]);
    await queue.promote('unknown'); // no-op
  });

  it('retries a failing job with the backoff it is given, the error included', async () => {
    let tries = 0;
    const backoffs: [number, number | undefined][] = [];
    await queue.consume(
      async () => {
        tries++;
        if (tries < 3) throw new RetryLater('busy', 50);
      },
      { concurrency: 1, backoffMs: (retry, err, data) => (backoffs.push([retry, (err as RetryLater).retryAfterMs ?? data.n]), 50) },
    );
    await queue.add({ n: 7 }, { attempts: 5 });
    await until(() => tries === 3, 'three tries');
    expect(backoffs).toEqual([
      [1, 50],
      [2, 50],
    ]);
  });

  it('gives up after the last attempt and frees the id', async () => {
    let tries = 0;
    await queue.consume(async () => {
      tries++;
      throw new Error('always');
    }, noBackoff);
    await queue.add({ n: 1 }, { jobId: 'doomed', attempts: 2 });
    await until(() => tries === 2, 'two tries');
    await new Promise((r) => setTimeout(r, 200));
    expect(tries).toBe(2);
    await queue.add({ n: 2 }, { jobId: 'doomed', attempts: 1 });
    await until(() => tries === 3, 'the id reused');
  });

  it('drops the oldest waiting job to stay bounded', async () => {
    await queue.add({ n: 1 }, { attempts: 1, delayMs: 60_000 });
    await queue.add({ n: 2 }, { attempts: 1, delayMs: 60_000 });
    await queue.dropOldest();
    expect(await queue.size()).toBe(1);
    const seen: number[] = [];
    await queue.consume(async (job) => void seen.push(job.n), noBackoff);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual([]);
  });
});
