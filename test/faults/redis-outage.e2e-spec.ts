import { LlmStub } from '@berth/testing';
import { Client } from 'pg';
import { BerthProcess, FaultLab } from '../support/faults';
import { eventually } from '../support/processes';
import { adminTenantWithKey, api, SocketClient, startRequest, userMessage } from '../support/server';

const KEY = 'outage-key';
const ADMIN = 'outage-admin';
/** Far more reaper ticks than the 35 s outage saw at the default 30 s interval. */
const LOOP_ENV = { BERTH_REAPER_INTERVAL_MS: '200' };

/** A 503 as the issue asks: Retry-After, an OpenHands body, no internals. */
function expectOutageAnswer(reply: { status: number; body: any; headers: Headers }): void {
  expect(reply.status).toBe(503);
  expect(Number(reply.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(Object.keys(reply.body)).toEqual(['detail']);
  expect(JSON.stringify(reply.body)).not.toMatch(/prisma|redis|ioredis|\/work\/|node_modules|ECONN|127\.0\.0\.1/i);
}

describe('Redis outage (private Redis and PostgreSQL, gateway and worker as children)', () => {
  const lab = new FaultLab();
  const llm = new LlmStub();
  let gateway: BerthProcess;
  let worker: BerthProcess;

  beforeAll(async () => {
    await llm.start();
    await lab.startPostgres();
    await lab.startRedis({ persistent: true });
    gateway = await lab.startGateway({ env: { ...LOOP_ENV, OH_SESSION_API_KEYS_0: KEY, BERTH_ADMIN_API_KEYS_0: ADMIN } });
    worker = await lab.startWorker({ env: LOOP_ENV });
  });
  afterAll(async () => {
    await lab.close();
    await llm.stop();
  });

  it('kills no process, answers 503 with Retry-After, refuses new sockets 1013, and delivers what was stored meanwhile', async () => {
    const tenant = await adminTenantWithKey(gateway, ADMIN);
    // A run whose command ends while Redis is away: its observation is stored, its publish fails.
    const text = 'outlive a redis outage';
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'sleep 3 && echo slept', timeout: 60 } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
    ]);
    const created = await api(gateway, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: '/workspace/project' },
        initial_message: userMessage(text, true),
      },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const follower = new SocketClient(`${gateway.url.replace('http', 'ws')}/sockets/events/${id}?session_api_key=${KEY}&resend_mode=all`);
    await follower.waitFor((f) => f.some((e) => e.kind === 'ActionEvent'), 20_000, 'the terminal action');

    await lab.redis.stop();
    const db = new Client({ connectionString: lab.postgres.url });
    await db.connect();
    try {
      const stored = async () => (await db.query(`SELECT 1 FROM events WHERE conversation_id = $1 AND kind = 'ObservationEvent'`, [id])).rowCount === 1;
      expect(await eventually(stored, 20_000)).toBe(true);
    } finally {
      await db.end();
    }
    expect(follower.frames.some((e) => e.kind === 'ObservationEvent')).toBe(false);

    // A request whose key is checked against Redis (a tenant key: the tenancy epoch).
    expect(await eventually(async () => (await api(gateway, 'GET', '/api/conversations/count', { key: tenant.key })).status === 503, 15_000)).toBe(true);
    expectOutageAnswer(await api(gateway, 'GET', '/api/conversations/count', { key: tenant.key }));
    expectOutageAnswer(await api(gateway, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage('refused') }));
    const ready = await api(gateway, 'GET', '/ready');
    expect(ready.status).toBe(503);
    expect(JSON.stringify(ready.body)).not.toMatch(/ECONN|127\.0\.0\.1|\/work\//);
    expect((await fetch(`${worker.url}/ready`)).status).toBe(503);

    // A socket opened now cannot subscribe: closed so the client retries, not left without frames.
    const late = new SocketClient(`${gateway.url.replace('http', 'ws')}/sockets/events/${id}?session_api_key=${KEY}`);
    expect([1011, 1013]).toContain(await late.waitClosed(15_000));
    expect(late.frames).toEqual([]);

    // Many reaper and sweep ticks later, nothing has died.
    await new Promise((r) => setTimeout(r, 2000));
    expect(gateway.alive).toBe(true);
    expect(worker.alive).toBe(true);

    await lab.redis.start();
    const delivered = await follower.waitFor((f) => f.some((e) => e.kind === 'ObservationEvent'), 15_000, 'the observation stored during the outage');
    const ids = delivered.filter((e) => e.id).map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await eventually(async () => (await api(gateway, 'GET', '/api/conversations/count', { key: tenant.key })).status === 200, 15_000)).toBe(true);
    // BullMQ's own connections back off up to 20 s between reconnection attempts.
    expect(await eventually(async () => (await fetch(`${gateway.url}/ready`)).status === 200, 30_000)).toBe(true);
    expect(await eventually(async () => (await fetch(`${worker.url}/ready`)).status === 200, 30_000)).toBe(true);
    const again = new SocketClient(`${gateway.url.replace('http', 'ws')}/sockets/events/${id}?session_api_key=${KEY}`);
    await again.waitFor((f) => f.length >= 1, 10_000, 'the full state after recovery');
    again.close();
    follower.close();
    expect(gateway.alive && worker.alive).toBe(true);
    expect(gateway.output() + worker.output()).not.toMatch(/unhandled|UnhandledPromiseRejection/i);
  });
});
