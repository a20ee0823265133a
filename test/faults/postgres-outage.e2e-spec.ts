import { BerthProcess, FaultLab } from '../support/faults';
import { eventually } from '../support/processes';
import { api, SocketClient, startRequest, userMessage } from '../support/server';

const KEY = 'pg-outage-key';

describe('PostgreSQL outage (private PostgreSQL and Redis, gateway and worker as children)', () => {
  const lab = new FaultLab();
  let gateway: BerthProcess;
  let worker: BerthProcess;

  beforeAll(async () => {
    await lab.startPostgres();
    await lab.startRedis();
    gateway = await lab.startGateway({ env: { BERTH_REAPER_INTERVAL_MS: '200', OH_SESSION_API_KEYS_0: KEY } });
    worker = await lab.startWorker({ env: { BERTH_REAPER_INTERVAL_MS: '200' } });
  });
  afterAll(() => lab.close());

  it('answers 503 with Retry-After and no internals, refuses sockets 1013, and recovers', async () => {
    const created = await api(gateway, 'POST', '/api/conversations', { key: KEY, body: startRequest() });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const socketUrl = `${gateway.url.replace('http', 'ws')}/sockets/events/${id}?session_api_key=${KEY}`;

    await lab.postgres.kill();
    const reply = await api(gateway, 'GET', `/api/conversations/${id}`, { key: KEY });
    expect(reply.status).toBe(503);
    expect(Number(reply.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Object.keys(reply.body)).toEqual(['detail']);
    expect(JSON.stringify(reply.body)).not.toMatch(/prisma|postgres|\/work\/|node_modules|ECONN|127\.0\.0\.1/i);
    expect((await api(gateway, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage('refused') })).status).toBe(503);
    expect((await fetch(`${gateway.url}/ready`)).status).toBe(503);
    expect((await fetch(`${worker.url}/ready`)).status).toBe(503);
    const refused = new SocketClient(socketUrl);
    expect(await refused.waitClosed(15_000)).toBe(1013);

    // Reaper, webhook and socket loops tick many times against the missing database.
    await new Promise((r) => setTimeout(r, 2000));
    expect(gateway.alive && worker.alive).toBe(true);

    await lab.postgres.start();
    expect(await eventually(async () => (await api(gateway, 'GET', `/api/conversations/${id}`, { key: KEY })).status === 200, 20_000)).toBe(true);
    expect(await eventually(async () => (await fetch(`${gateway.url}/ready`)).status === 200, 20_000)).toBe(true);
    expect(await eventually(async () => (await fetch(`${worker.url}/ready`)).status === 200, 20_000)).toBe(true);
    const follower = new SocketClient(socketUrl);
    await follower.waitFor((f) => f.length >= 1, 10_000, 'the full state');
    expect((await api(gateway, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage('after the outage') })).status).toBe(200);
    await follower.waitFor((f) => f.some((e) => e.kind === 'MessageEvent'), 10_000, 'the new message');
    follower.close();
    expect(gateway.alive && worker.alive).toBe(true);
    expect(gateway.output() + worker.output()).not.toMatch(/unhandled|UnhandledPromiseRejection/i);
  });
});
