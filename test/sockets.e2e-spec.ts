import { randomUUID } from 'node:crypto';
import { api, SocketClient, startRequest, startServer, STORAGES, TestServer, userMessage } from './support/server';

const KEY = 'socket-test-key';

describe.each(STORAGES)('event socket (%s)', (storage) => {
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });
  const newConversation = async (extra: Record<string, unknown> = {}) => (await call('POST', '/api/conversations', startRequest(extra))).body.id as string;
  const socket = (id: string, query = '', headers: Record<string, string> = {}) =>
    new SocketClient(`${server.wsUrl}/sockets/events/${id}${query}`, headers);
  const storedKinds = async (id: string) => (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items;

  beforeAll(async () => {
    server = await startServer(storage, {
      OH_SESSION_API_KEYS_0: KEY,
      BERTH_WS_AUTH_TIMEOUT_MS: '400',
      BERTH_WS_MAX_SUBSCRIBERS: '3',
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('sends the full_state ConversationStateUpdateEvent first, with key in the query', async () => {
    const id = await newConversation();
    const ws = socket(id, `?session_api_key=${KEY}`);
    const [first] = await ws.waitFor((f) => f.length >= 1);
    expect(first).toMatchObject({ kind: 'ConversationStateUpdateEvent', key: 'full_state', source: 'environment' });
    expect(first.value).toMatchObject({ id, execution_status: 'idle', head_is_empty: true, stats: { usage_to_metrics: {} } });
    expect(first.value.agent.llm.api_key).toBe('**********');
    expect(JSON.stringify(first)).not.toContain('sk-test-should-never-leak');
    ws.close();
  });

  it('authenticates by header and by a first auth frame; refuses wrong keys with 4001', async () => {
    const id = await newConversation();
    const byHeader = socket(id, '', { 'X-Session-API-Key': KEY });
    await byHeader.waitFor((f) => f.length >= 1);
    byHeader.close();

    const byFrame = socket(id);
    await byFrame.open();
    byFrame.send({ type: 'auth', session_api_key: KEY });
    await byFrame.waitFor((f) => f[0]?.key === 'full_state');
    byFrame.close();

    expect(await socket(id, '?session_api_key=wrong').waitClosed()).toBe(4001);
    expect(await socket(id, '', { 'X-Session-API-Key': 'wrong' }).waitClosed()).toBe(4001);
    const wrongFrame = socket(id);
    await wrongFrame.open();
    wrongFrame.send({ type: 'auth', session_api_key: 'wrong' });
    expect(await wrongFrame.waitClosed()).toBe(4001);
    const garbage = socket(id);
    await garbage.open();
    garbage.send('not json');
    expect(await garbage.waitClosed()).toBe(4001);
    // Nothing sent within the auth timeout.
    const silent = socket(id);
    expect(await silent.waitClosed()).toBe(4001);
    expect(silent.frames).toEqual([]);
  });

  it('closes 4004 for unknown or malformed conversation ids', async () => {
    expect(await socket(randomUUID(), `?session_api_key=${KEY}`).waitClosed()).toBe(4004);
    expect(await socket('not-a-uuid', `?session_api_key=${KEY}`).waitClosed()).toBe(4004);
  });

  it('replays with resend_mode=all, resend_all=true, since, and resumes exactly after after_event_id', async () => {
    const id = await newConversation();
    for (const text of ['one', 'two', 'three']) await call('POST', `/api/conversations/${id}/events`, userMessage(text));
    const stored = await storedKinds(id);
    expect(stored.length).toBe(7); // the SystemPromptEvent, 3 messages + 3 last_user_message_id updates

    for (const query of ['resend_mode=all', 'resend_all=true']) {
      const ws = socket(id, `?session_api_key=${KEY}&${query}`);
      const frames = await ws.waitFor((f) => f.length >= 1 + stored.length);
      expect(frames.slice(1).map((e) => e.id)).toEqual(stored.map((e: any) => e.id));
      expect(frames.slice(1)).toEqual(stored);
      ws.close();
    }

    const since = socket(id, `?session_api_key=${KEY}&resend_mode=since&after_timestamp=${encodeURIComponent(stored[2].timestamp)}`);
    const sinceFrames = await since.waitFor((f) => f.length >= 1 + 5);
    expect(sinceFrames.slice(1).map((e) => e.id)).toEqual(stored.slice(2).map((e: any) => e.id));
    since.close();

    const resumed = socket(id, `?session_api_key=${KEY}&after_event_id=${stored[3].id}`);
    await resumed.waitFor((f) => f.length >= 1 + 3);
    await call('POST', `/api/conversations/${id}/events`, userMessage('four'));
    const resumedFrames = await resumed.waitFor((f) => f.length >= 1 + 5);
    expect(resumedFrames.slice(1, 4).map((e) => e.id)).toEqual(stored.slice(4).map((e: any) => e.id));
    expect(resumedFrames[4].llm_message.content[0].text).toBe('four');
    resumed.close();

    expect(await socket(id, `?session_api_key=${KEY}&after_event_id=nope`).waitClosed()).toBe(1008);
    expect(await socket(id, `?session_api_key=${KEY}&resend_mode=since`).waitClosed()).toBe(1008);
    expect(await socket(id, `?session_api_key=${KEY}&resend_mode=sometimes`).waitClosed()).toBe(1008);
  });

  it('never duplicates or reorders when history is replayed while events are being written, nor live events of concurrent writers', async () => {
    const id = await newConversation();
    for (let i = 0; i < 20; i++) await call('POST', `/api/conversations/${id}/events`, userMessage(`before ${i}`));
    // Concurrent writers publish in either order (seq n+1 may reach the bus before n): a live subscriber still gets seq order.
    const live = socket(id, `?session_api_key=${KEY}`);
    await live.waitFor((f) => f.length >= 1);
    const writers = Promise.all(Array.from({ length: 30 }, (_, i) => call('POST', `/api/conversations/${id}/events`, userMessage(`during ${i}`))));
    const ws = socket(id, `?session_api_key=${KEY}&resend_mode=all`);
    await writers;
    const total = 1 + 2 * 50; // the SystemPromptEvent, then each message and its state update
    const frames = await ws.waitFor((f) => f.length >= 1 + total, 20_000, `${total} events`);
    await new Promise((r) => setTimeout(r, 200));
    const events = ws.frames.slice(1);
    const stored = [];
    for (let page = await call('GET', `/api/conversations/${id}/events/search?limit=100`); ; ) {
      stored.push(...page.body.items);
      if (!page.body.next_page_id) break;
      page = await call('GET', `/api/conversations/${id}/events/search?limit=100&page_id=${page.body.next_page_id}`);
    }
    expect(frames.length).toBe(1 + total);
    expect(events.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    const during = stored.slice(1 + 2 * 20);
    const liveFrames = await live.waitFor((f) => f.length >= 1 + during.length, 20_000, `${during.length} live events`);
    expect(liveFrames.map((e) => e.id)).toEqual([liveFrames[0].id, ...during.map((e) => e.id)]);
    ws.close();
    live.close();
  });

  it('takes user messages on the socket: appended and run; bad frames get a ServerErrorEvent', async () => {
    const id = await newConversation();
    const ws = socket(id, `?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 1);
    ws.send({ type: 'auth', session_api_key: KEY }); // redundant auth frames are ignored
    ws.send('{oops');
    ws.send({ role: 'assistant', content: [{ type: 'text', text: 'not allowed' }] });
    ws.send({ role: 'user', content: [{ type: 'text', text: 'hello over ws' }] });
    const frames = await ws.waitFor((f) => f.some((e) => e.kind === 'ConversationStateUpdateEvent' && e.value === 'running'));
    const errors = frames.filter((e) => e.kind === 'ServerErrorEvent');
    expect(errors.map((e) => e.code)).toEqual(['JSONDecodeError', 'ValidationError']);
    expect(errors[0]).toMatchObject({ source: 'environment' });
    expect(frames.find((e) => e.kind === 'MessageEvent').llm_message.content[0].text).toBe('hello over ws');
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('running');
    // ServerErrorEvents are replies, never stored.
    expect((await storedKinds(id)).some((e: any) => e.kind === 'ServerErrorEvent')).toBe(false);
    ws.close();
  });

  it('publishes a full_state frame after pause and interrupt', async () => {
    const id = await newConversation();
    const ws = socket(id, `?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 1);
    await call('POST', `/api/conversations/${id}/run`);
    await call('POST', `/api/conversations/${id}/pause`);
    const frames = await ws.waitFor((f) => f.filter((e) => e.key === 'full_state').length >= 2);
    const last = frames.filter((e) => e.key === 'full_state').pop();
    expect(last.value.execution_status).toBe('paused');
    expect(frames.map((e) => e.kind)).toContain('PauseEvent');
    ws.close();
  });

  it('limits subscribers per conversation (1013)', async () => {
    const id = await newConversation();
    const clients = [socket(id, `?session_api_key=${KEY}`), socket(id, `?session_api_key=${KEY}`), socket(id, `?session_api_key=${KEY}`)];
    for (const c of clients) await c.waitFor((f) => f.length >= 1);
    const fourth = socket(id, `?session_api_key=${KEY}`);
    expect(await fourth.waitClosed()).toBe(1013);
    for (const c of clients) c.close();
  });

  it('emits event JSON with no fields beyond the OpenHands model', async () => {
    const id = await newConversation();
    const ws = socket(id, `?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 1);
    await call('POST', `/api/conversations/${id}/events`, { ...userMessage('shape'), sender: 'alice' });
    const frames = await ws.waitFor((f) => f.some((e) => e.kind === 'MessageEvent'));
    const message = frames.find((e) => e.kind === 'MessageEvent');
    expect(Object.keys(message).sort()).toEqual(
      ['activated_skills', 'extended_content', 'id', 'kind', 'llm_message', 'sender', 'source', 'timestamp'].sort(),
    );
    expect(message.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    expect(message.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    ws.close();
  });
});

describe('event socket across gateway replicas (PostgreSQL + Redis)', () => {
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    a = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY });
    b = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_WS_MAX_BUFFER_BYTES: '4096' });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('delivers events written through one replica to subscribers of another', async () => {
    const id = (await api(a, 'POST', '/api/conversations', { body: startRequest(), key: KEY })).body.id;
    const ws = new SocketClient(`${b.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 1);
    await api(a, 'POST', `/api/conversations/${id}/events`, { body: userMessage('from replica A'), key: KEY });
    const frames = await ws.waitFor((f) => f.some((e) => e.kind === 'MessageEvent'));
    expect(frames.find((e) => e.kind === 'MessageEvent').llm_message.content[0].text).toBe('from replica A');
    ws.close();
  });

  it('keeps cached conversation counts exact across replicas', async () => {
    const before = (await api(b, 'GET', '/api/conversations/count', { key: KEY })).body;
    const runningBefore = (await api(b, 'GET', '/api/conversations/count?status=running', { key: KEY })).body;
    const id = (await api(a, 'POST', '/api/conversations', { body: startRequest(), key: KEY })).body.id;
    await api(a, 'POST', `/api/conversations/${id}/run`, { key: KEY });
    const deadline = Date.now() + 1000; // well under the cache's 2 s safety net
    let seen = before;
    while (seen !== before + 1 && Date.now() < deadline) seen = (await api(b, 'GET', '/api/conversations/count', { key: KEY })).body;
    expect(seen).toBe(before + 1);
    let running = runningBefore;
    while (running !== runningBefore + 1 && Date.now() < deadline) running = (await api(b, 'GET', '/api/conversations/count?status=running', { key: KEY })).body;
    expect(running).toBe(runningBefore + 1);
    await api(a, 'DELETE', `/api/conversations/${id}`, { key: KEY });
    expect((await api(a, 'GET', '/api/conversations/count', { key: KEY })).body).toBe(before);
  });

  it('closes a subscriber that stops reading with 1013 while a fast one gets everything', async () => {
    const id = (await api(a, 'POST', '/api/conversations', { body: startRequest(), key: KEY })).body.id;
    const fast = new SocketClient(`${b.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
    const slow = new SocketClient(`${b.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
    await fast.waitFor((f) => f.length >= 1);
    await slow.waitFor((f) => f.length >= 1);
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    // Enough to fill the kernel's loopback buffers (several MB) and then the 4 KiB allowance.
    const big = 'x'.repeat(128 * 1024);
    const count = 160;
    for (let i = 0; i < count; i++) await api(a, 'POST', `/api/conversations/${id}/events`, { body: userMessage(`${i} ${big}`), key: KEY });
    await fast.waitFor((f) => f.filter((e) => e.kind === 'MessageEvent').length >= count, 20_000, 'all messages on the fast socket');
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await slow.waitClosed(20_000)).toBe(1013);
    expect(slow.frames.filter((e) => e.kind === 'MessageEvent').length).toBeLessThan(count);
    fast.close();
  });
});
