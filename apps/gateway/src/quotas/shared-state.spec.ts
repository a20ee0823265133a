import { until } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import { InProcessSharedState, RedisSharedState, SharedState } from './shared-state';

const REDIS_URL = process.env.BERTH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Two views of one state: the same object in process, two connections (two replicas) with Redis. */
const IMPLEMENTATIONS: [string, () => [SharedState, SharedState]][] = [
  [
    'InProcessSharedState',
    () => {
      const state = new InProcessSharedState();
      return [state, state];
    },
  ],
  [
    'RedisSharedState',
    () => {
      const prefix = `berth-test-${randomUUID()}`;
      return [new RedisSharedState(REDIS_URL, prefix), new RedisSharedState(REDIS_URL, prefix)];
    },
  ],
];

describe.each(IMPLEMENTATIONS)('%s', (_name, make) => {
  let here: SharedState;
  let there: SharedState;

  beforeAll(() => {
    [here, there] = make();
  });
  afterAll(async () => {
    await here.close();
    await there.close();
  });

  it('counts hits of one window together, per key, with the window end', async () => {
    const key = randomUUID();
    const windowMs = 3_600_000;
    const first = await here.hit(key, windowMs);
    const second = await there.hit(key, windowMs);
    expect(second.count).toBe(first.count + 1);
    expect(second.resetAt).toBe(Math.floor(Date.now() / windowMs) * windowMs + windowMs);
    expect((await here.hit(randomUUID(), windowMs)).count).toBe(1);
  });

  it('hands out at most `limit` slots; a released slot is free again', async () => {
    const key = randomUUID();
    expect(await here.acquire(key, 'a', 2, 60_000)).toBe(true);
    expect(await there.acquire(key, 'b', 2, 60_000)).toBe(true);
    expect(await here.acquire(key, 'c', 2, 60_000)).toBe(false);
    await there.release(key, 'a');
    expect(await here.acquire(key, 'c', 2, 60_000)).toBe(true);
  });

  it('lets a slot lapse when its holder stops renewing it; renewal keeps a slot and brings no released one back', async () => {
    const key = randomUUID();
    expect(await here.acquire(key, 'dead', 2, 200)).toBe(true);
    expect(await here.acquire(key, 'alive', 2, 60_000)).toBe(true);
    await until(async () => there.acquire(key, 'next', 2, 60_000), 'the unrenewed slot to lapse');
    await here.release(key, 'next');
    await here.renew(key, ['alive', 'next'], 60_000);
    expect(await there.acquire(key, 'again', 2, 60_000)).toBe(true);
    expect(await there.acquire(key, 'more', 2, 60_000)).toBe(false);
  });

  it('keeps version counters every view sees', async () => {
    const key = randomUUID();
    expect(await here.version(key)).toBe(0);
    expect(await there.bump(key)).toBe(1);
    expect(await here.version(key)).toBe(1);
  });

  it('remembers a value for every view until it lapses', async () => {
    const key = randomUUID();
    expect(await here.recall(key)).toBeNull();
    await here.remember(key, 'sandbox-a', 300);
    expect(await there.recall(key)).toBe('sandbox-a');
    await there.remember(key, 'sandbox-b', 300);
    expect(await here.recall(key)).toBe('sandbox-b');
    await until(async () => (await here.recall(key)) === null, 'the value to lapse', 5000);
  });
});
