import { api } from '../support/server';
import { allActing, allTerminal, checkRun, createRuns, KEY, RunsLab, startRunsLab, statusOf, waitUntil } from './runs-support';

/**
 * The run's durable intent (its `running` row) outlives what Redis and BullMQ lose: a conversation
 * created while Redis is down, and runs whose jobs exhausted their retries while PostgreSQL was down,
 * are queued again by the workers' reconciler and finish.
 */
describe('runs across outages (2 workers, private Redis and PostgreSQL)', () => {
  let r: RunsLab;

  beforeAll(async () => {
    r = await startRunsLab(2);
  });
  afterAll(() => r?.close());

  it('a conversation created while Redis is down is no ghost: once Redis is back (empty), it runs and finishes', async () => {
    r.llm.script('ghost', [{ toolCalls: [{ name: 'finish', arguments: { message: 'not a ghost' } }] }]);
    await r.lab.redis.stop();
    const created = api(r.gateway, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: r.llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: '/workspace/ghost' },
        initial_message: { role: 'user', content: [{ type: 'text', text: 'ghost' }] },
      },
    });
    await new Promise((res) => setTimeout(res, 3000));
    await r.lab.redis.start();
    // Whatever the request answered, a row it committed runs to its end.
    const answer = await created;
    const { rows } = await r.db.query(`SELECT id::text AS id FROM conversations WHERE workspace->>'working_dir' = '/workspace/ghost'`);
    expect(rows.length).toBe(answer.status === 201 ? 1 : rows.length);
    expect(rows.length).toBeLessThanOrEqual(1);
    console.log(`POST /api/conversations while Redis was down answered ${answer.status}; ${rows.length} row committed`);
    await waitUntil('the conversation ends', allTerminal(r, rows.map((row) => row.id)));
    for (const row of rows) await checkRun(r, row.id);
  }, 120_000);

  it('a conversation marked running whose run was never queued (a crash between commit and enqueue) runs', async () => {
    r.llm.script('never queued', [{ toolCalls: [{ name: 'finish', arguments: { message: 'ran' } }] }]);
    const created = await api(r.gateway, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: r.llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: '/workspace/never-queued' },
      },
    });
    const id: string = created.body.id;
    // What POST /api/conversations with an initial message commits, without the enqueue that follows.
    await api(r.gateway, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: { role: 'user', content: [{ type: 'text', text: 'never queued' }], run: false } });
    await r.db.query(`UPDATE conversations SET execution_status = 'running' WHERE id = $1`, [id]);
    // Already running: 409, and no second run — the reconciler's one is enough.
    expect((await api(r.gateway, 'POST', `/api/conversations/${id}/run`, { key: KEY })).status).toBe(409);
    await waitUntil('the run ends', allTerminal(r, [id]));
    const events = await checkRun(r, id);
    expect(events.filter((e) => e.kind === 'ObservationEvent').map((e) => e.payload.observation.content[0].text)).toEqual(['ran']);
  });

  it('runs whose jobs exhausted their retries while PostgreSQL was down are queued again and finish', async () => {
    const ids = await createRuns(r, 'pg-down', 3, 2, 500);
    await waitUntil('every run acts', allActing(r, ids));
    await r.lab.postgres.stop();
    // Five attempts with exponential backoff from 1 s: about 15 s until BullMQ gives up on each job.
    await new Promise((res) => setTimeout(res, 20_000));
    await r.lab.postgres.start();
    await r.reconnect();
    await waitUntil('every run ends', allTerminal(r, ids));
    for (const id of ids) {
      await checkRun(r, id);
      expect(await statusOf(r, id)).toBe('finished');
    }
  }, 180_000);
});
