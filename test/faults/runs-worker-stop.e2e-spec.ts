import { BerthProcess } from '../support/faults';
import { allActing, allTerminal, checkFollowers, checkRun, createRuns, eventsOf, followAll, RunsLab, STALL_MS, startRunsLab, waitUntil } from './runs-support';

/** The pid of each conversation's sandbox executor (in its handle), in the order of `ids`. */
async function executorPids(r: RunsLab, ids: string[]): Promise<unknown[]> {
  const { rows } = await r.db.query(
    'SELECT c.id, s.handle FROM conversations c JOIN sandboxes s ON s.id = c.sandbox_id WHERE c.id = ANY($1::uuid[])',
    [ids],
  );
  return ids.map((id) => rows.find((row) => row.id === id)?.handle?.pid ?? null);
}

/** A worker stopped mid-run, gracefully (SIGTERM) or not (kill -9), with another worker to take over. */
describe('a worker stopped mid-run (2 workers, private Redis and PostgreSQL)', () => {
  let r: RunsLab;

  beforeAll(async () => {
    r = await startRunsLab();
  });
  afterAll(() => r?.close());

  it('SIGTERM: the worker ends its steps and hands its runs over; no tool call fails, every run finishes once, socket followers see each event once', async () => {
    const first = await r.startWorker();
    const ids = await createRuns(r, 'sigterm', 3, 3, 1500);
    const followers = followAll(r, ids);
    await waitUntil('every run acts', allActing(r, ids));
    const executorsBefore = await executorPids(r, ids);
    const second = await r.startWorker();
    // Nest's shutdown hooks ran, then the process ends by the signal it got.
    const stopped = first.stop();
    // Resumed during the hand-over.
    for (const f of followers) f.reconnect();
    expect(await stopped).toBe('SIGTERM');
    await waitUntil('every run ends', allTerminal(r, ids));
    for (const id of ids) {
      const events = await checkRun(r, id);
      // Each step ended before the stop: nothing was cut short, no call met a closed driver.
      expect(events.filter((e) => e.kind === 'AgentErrorEvent').map((e) => e.payload.error)).toEqual([]);
      expect(events.filter((e) => e.kind === 'ObservationEvent')).toHaveLength(4);
    }
    await checkFollowers(r, followers);
    // The sandboxes of the handed-over runs kept their executors: the stopping worker left them to the next one.
    expect(await executorPids(r, ids)).toEqual(executorsBefore);
    await second.stop();
  });

  it('kill -9: another worker takes the run over and finishes it, its socket follower sees each event once (takeover time printed)', async () => {
    const first = await r.startWorker();
    const [id] = await createRuns(r, 'sigkill', 1, 2, 10_000);
    const followers = followAll(r, [id]);
    const second: BerthProcess = await r.startWorker();
    // Killed with a tool call in flight (not between steps, where no call would be cut short).
    await waitUntil('a tool call in flight', async () => (await eventsOf(r, id)).at(-1)?.kind === 'ActionEvent');
    const before = (await eventsOf(r, id)).length;
    const killedAt = Date.now();
    await first.kill();
    // Resumed while the run has no owner.
    followers[0].reconnect();
    await waitUntil('the run moves again', async () => (await eventsOf(r, id)).length > before);
    const takeoverMs = Date.now() - killedAt;
    console.log(`takeover after kill -9: ${takeoverMs} ms (${(takeoverMs / STALL_MS).toFixed(2)} x BERTH_RUN_STALL_MS=${STALL_MS})`);
    await waitUntil('the run ends', allTerminal(r, [id]));
    const events = await checkRun(r, id);
    expect(events.filter((e) => e.kind === 'AgentErrorEvent').map((e) => String(e.payload.error).slice(0, 27))).toEqual(['A restart occurred while th']);
    await checkFollowers(r, followers);
    await second.stop();
  });
});
