import { Redis } from 'ioredis';
import { allActing, allTerminal, checkFollowers, checkRun, createRuns, followAll, RunsLab, STALL_MS, startRunsLab, waitUntil } from './runs-support';

/**
 * Runs across Redis faults, 2 workers (children) and a private Redis: a freeze longer than
 * BERTH_RUN_STALL_MS lets the leases and job locks lapse, so the stalled runs go to the other worker
 * while the first loops still think they run them; FLUSHALL loses every job and lease at once.
 */
describe('runs across Redis faults (2 workers, private Redis and PostgreSQL)', () => {
  let r: RunsLab;

  beforeAll(async () => {
    r = await startRunsLab(2);
  });
  afterAll(() => r?.close());

  it('a Redis frozen past the stall time: each run still ends finished once, no action run or answered twice, no event doubled or missing, socket followers see each event once', async () => {
    // As the fault tester had it: LLM steps of 1.5 s, Redis frozen for 3 stall times.
    const ids = await createRuns(r, 'freeze', 8, 4, 500, 1500);
    const followers = followAll(r, ids);
    await waitUntil('every run acts', allActing(r, ids));
    r.lab.redis.freeze();
    await new Promise((res) => setTimeout(res, STALL_MS));
    // Resumed while Redis cannot answer: the gateway closes (1011/1013) or serves them late; either way they come back.
    for (const f of followers) f.reconnect();
    await new Promise((res) => setTimeout(res, 2 * STALL_MS));
    r.lab.redis.thaw();
    await new Promise((res) => setTimeout(res, STALL_MS));
    // And once more while the runs move again.
    for (const f of followers) f.reconnect();
    await waitUntil('every run ends', allTerminal(r, ids));
    for (const id of ids) await checkRun(r, id);
    await checkFollowers(r, followers);
  });

  it('a Redis that lost every job and lease (FLUSHALL): the reconciler queues the runs again and they finish', async () => {
    const ids = await createRuns(r, 'flushed', 4, 3, 1000);
    await waitUntil('every run acts', allActing(r, ids));
    const redis = new Redis(r.lab.redis.url);
    await redis.flushall();
    redis.disconnect();
    await waitUntil('every run ends', allTerminal(r, ids));
    let restarted = 0;
    for (const id of ids) {
      const events = await checkRun(r, id);
      // A loop that found its lease gone stopped mid-command; its successor (queued by the reconciler, the job being gone) said so.
      if (events.some((e) => e.kind === 'AgentErrorEvent' && String(e.payload.error).startsWith('A restart occurred'))) restarted++;
    }
    expect(restarted).toBeGreaterThan(0);
  });
});
