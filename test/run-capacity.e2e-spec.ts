import { randomUUID } from 'node:crypto';
import { api, createTenant, privateDatabase, Reply, startRequest, startServer, STORAGES, TestServer, userMessage } from './support/server';

const KEY = 'capacity-test-key';
const FULL = 'Conversation run limit reached. Retry the request later.';


function expectFull(res: Reply, detail = FULL): void {
  expect(res.status).toBe(429);
  expect(res.body).toEqual({ detail });
  expect(res.headers.get('retry-after')).toBe('5');
  expect(res.headers.get('x-ratelimit-limit')).toBe('1');
  expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
}

describe.each(STORAGES)('server run capacity: BERTH_MAX_CONCURRENT_RUNS (%s)', (storage) => {
  let server: TestServer;
  let database: { url: string; drop: () => Promise<void> } | null = null;
  const call = (method: string, path: string, body?: unknown, key = KEY) => api(server, method, path, { body, key });

  beforeAll(async () => {
    database = storage === 'postgres' ? await privateDatabase('capacity') : null;
    // Gateway only: a queued run stays running, so the capacity stays taken until it is paused.
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_MAX_CONCURRENT_RUNS: '1', ...(database ? { DATABASE_URL: database.url } : {}) });
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('answers 429 as OpenHands when every run slot is taken, for every way of starting a run and every tenant', async () => {
    const a = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('takes the slot') }));
    expect(a.status).toBe(201);
    expect(a.body.execution_status).toBe('running');

    // A create that would run: refused, nothing made.
    const refusedId = randomUUID();
    expectFull(await call('POST', '/api/conversations', startRequest({ conversation_id: refusedId, initial_message: userMessage('no room') })));
    expect((await call('GET', `/api/conversations/${refusedId}`)).status).toBe(404);

    // An idle conversation costs no run slot (OpenHands refuses it too: its creation initializes an agent).
    const c = await call('POST', '/api/conversations', startRequest());
    expect(c.status).toBe(201);
    expectFull(await call('POST', `/api/conversations/${c.body.id}/run`));
    // run:true: the message is kept, only the run is to be retried.
    expectFull(
      await call('POST', `/api/conversations/${c.body.id}/events`, userMessage('kept', true)),
      `Message saved, but the conversation run limit was reached. Retry POST /api/conversations/${c.body.id}/run without resending the message.`,
    );
    const kept = (await call('GET', `/api/conversations/${c.body.id}/events/search`)).body.items.filter((e: any) => e.kind === 'MessageEvent');
    expect(kept.map((e: any) => e.llm_message.content[0].text)).toEqual(['kept']);
    expect((await call('GET', `/api/conversations/${c.body.id}`)).body.execution_status).toBe('idle');

    // The capacity is the server's: another tenant, with no limit of its own, is refused too.
    const other = await createTenant(server);
    expectFull(await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('other tenant') }), other.key));

    // The running conversation itself still takes messages (its run reads them) and answers 409 to /run.
    expect((await call('POST', `/api/conversations/${a.body.id}/events`, userMessage('more', true))).status).toBe(200);
    expect((await call('POST', `/api/conversations/${a.body.id}/run`)).status).toBe(409);

    // A slot freed: the waiting run starts.
    expect((await call('POST', `/api/conversations/${a.body.id}/pause`)).status).toBe(200);
    expect((await call('POST', `/api/conversations/${c.body.id}/run`)).status).toBe(200);
    expect((await call('GET', `/api/conversations/${c.body.id}`)).body.execution_status).toBe('running');
    expectFull(await call('POST', `/api/conversations/${a.body.id}/run`));
  });
});
