import { randomUUID } from 'node:crypto';
import { LlmStub } from '@berth/testing';
import { WebSocket } from 'ws';
import { api, createTenant, SocketClient, startRequest, startServer, STORAGES, TestServer, userMessage } from './support/server';

const KEY = 'session-socket-key';

/** The answer to a handshake the server refuses before upgrading (OpenHands answers invalid parameters 403). */
function handshakeStatus(url: string): Promise<number | 'upgraded'> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      resolve('upgraded');
      ws.close();
    });
    ws.on('error', () => undefined);
  });
}

const durable = (frames: any[]) => frames.filter((f) => f.type === 'durable');

describe.each(STORAGES)('session socket (%s)', (storage) => {
  const llm = new LlmStub();
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown, key = KEY) => api(server, method, path, { body, key });
  const agent = () => ({
    kind: 'Agent',
    llm: { model: 'openai/stub-model', api_key: 'sk-stub-secret', base_url: llm.url, num_retries: 0 },
    tools: [{ name: 'terminal' }],
  });
  const newConversation = async (key = KEY) => {
    const res = await call('POST', '/api/conversations', { agent: agent(), workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' } }, key);
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const socket = (id: string, query = `?session_api_key=${KEY}`, headers: Record<string, string> = {}) =>
    new SocketClient(`${server.wsUrl}/sockets/session/${id}${query}`, headers);
  const stored = async (id: string) => {
    const out: any[] = [];
    for (let page = await call('GET', `/api/conversations/${id}/events/search?limit=100`); ; ) {
      out.push(...page.body.items);
      if (!page.body.next_page_id) return out;
      page = await call('GET', `/api/conversations/${id}/events/search?limit=100&page_id=${page.body.next_page_id}`);
    }
  };
  const finished = (frames: any[]) =>
    frames.some((f) => f.type === 'durable' && f.event.key === 'execution_status' && f.event.value === 'finished');

  beforeAll(async () => {
    await llm.start();
    server = await startServer(storage, {
      OH_SESSION_API_KEYS_0: KEY,
      BERTH_ROLE: 'all',
      BERTH_WS_AUTH_TIMEOUT_MS: '400',
      BERTH_WS_MAX_SUBSCRIBERS: '3',
    });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
  });

  it('streams a run as the reference does: sync, transient full_state, then durable frames seq 0, 1, … and a closing full_state', async () => {
    const id = await newConversation();
    const text = `session run ${storage}`;
    llm.script(text, [{ toolCalls: [{ name: 'terminal', arguments: { command: 'echo session-$((6*7))' } }] }, { text: 'all done' }]);
    const live = socket(id);
    const [sync, snapshot] = await live.waitFor((f) => f.length >= 2);
    // An empty log: no through_seq; no cursor: no from_seq (pydantic's exclude_none).
    expect(sync).toEqual({ type: 'sync' });
    expect(Object.keys(snapshot)).toEqual(['type', 'event']);
    expect(snapshot).toMatchObject({ type: 'transient', event: { kind: 'ConversationStateUpdateEvent', key: 'full_state', value: { id, execution_status: 'idle' } } });
    expect(JSON.stringify(snapshot)).not.toContain('sk-stub-secret');

    expect((await call('POST', `/api/conversations/${id}/events`, userMessage(text, true))).status).toBe(200);
    const frames = await live.waitFor((f) => finished(f) && f.at(-1).type === 'transient', 60_000, 'the run to finish');
    const events = await stored(id);
    const got = durable(frames);
    expect(got.map((f) => f.seq)).toEqual(events.map((_, i) => i));
    expect(got.map((f) => f.event)).toEqual(events);
    for (const f of got) expect(Object.keys(f)).toEqual(['type', 'seq', 'event']);
    expect(got.map((f) => f.event.kind)).toEqual(expect.arrayContaining(['MessageEvent', 'ActionEvent', 'ObservationEvent']));
    // The run ends with a snapshot, never stored.
    expect(frames.at(-1)).toMatchObject({ type: 'transient', event: { key: 'full_state', value: { execution_status: 'finished' } } });
    expect(frames.filter((f) => !['sync', 'durable', 'transient'].includes(f.type))).toEqual([]);
    live.close();
  });

  it('resumes with after_seq mid-run across a reconnect: every stored event exactly once, in order', async () => {
    const id = await newConversation();
    const text = `session resume ${storage}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo first' } }], delayMs: 300 },
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo second' } }], delayMs: 600 },
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo third' } }], delayMs: 600 },
      { text: 'resumed fine', delayMs: 300 },
    ]);
    await call('POST', `/api/conversations/${id}/events`, userMessage(text, true));
    const first = socket(id, `?session_api_key=${KEY}&after_seq=-1`);
    const firstFrames = await first.waitFor((f) => durable(f).some((e) => e.event.kind === 'ObservationEvent'), 30_000, 'the first observation');
    first.close();
    await first.waitClosed();
    const seen = durable(firstFrames);
    const cursor = seen.at(-1).seq;
    expect(seen.map((f) => f.seq)).toEqual(seen.map((_, i) => i));
    expect(firstFrames[0]).toMatchObject({ type: 'sync', from_seq: -1 });

    // Events keep being written while nobody listens.
    await new Promise((r) => setTimeout(r, 400));
    const second = socket(id, `?session_api_key=${KEY}&after_seq=${cursor}`);
    const secondFrames = await second.waitFor(finished, 60_000, 'the run to finish');
    expect(secondFrames[0]).toEqual({ type: 'sync', from_seq: cursor, through_seq: expect.any(Number) });
    expect(secondFrames[0].through_seq).toBeGreaterThanOrEqual(cursor);
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('finished');
    const all = [...seen, ...durable(secondFrames)];
    const events = await stored(id);
    expect(all.map((f) => f.seq)).toEqual(events.map((_, i) => i));
    expect(all.map((f) => f.event.id)).toEqual(events.map((e) => e.id));
    // The snapshot comes after the replayed range and before anything live.
    const snapshotAt = secondFrames.findIndex((f) => f.type === 'transient');
    expect(durable(secondFrames.slice(1, snapshotAt)).map((f) => f.seq).at(-1) ?? cursor).toBe(secondFrames[0].through_seq);
    second.close();
  });

  it('replays from after_seq: -1 is everything, k is after k, a cursor past the end only live; the sync frame says the range', async () => {
    const id = await newConversation();
    for (const t of ['one', 'two', 'three']) await call('POST', `/api/conversations/${id}/events`, userMessage(t));
    const events = await stored(id);
    const last = events.length - 1;
    const cases: [string, number | string, number[]][] = [
      ['-1', -1, events.map((_, i) => i)],
      ['-7', -7, events.map((_, i) => i)],
      ['1', 1, events.map((_, i) => i).slice(2)],
      [String(last), last, []],
      ['99999999999999999999', '99999999999999999999', []],
    ];
    for (const [query, echoed, seqs] of cases) {
      const ws = socket(id, `?session_api_key=${KEY}&after_seq=${query}`);
      const raw: string[] = [];
      ws.ws.on('message', (data) => raw.push(data.toString()));
      const frames = await ws.waitFor((f) => f.some((x) => x.type === 'transient'));
      ws.close();
      // A cursor beyond any JavaScript number is echoed digit for digit, as Python's int is.
      if (typeof echoed === 'string') expect(raw[0]).toBe(`{"type":"sync","from_seq":${echoed},"through_seq":${last}}`);
      else expect(frames[0]).toEqual({ type: 'sync', from_seq: echoed, through_seq: last });
      expect(frames.slice(1, -1).map((f) => f.seq)).toEqual(seqs);
      expect(frames.slice(1, -1).map((f) => f.event)).toEqual(seqs.map((s) => events[s]));
      expect(frames.at(-1).event.key).toBe('full_state');
    }
    // No cursor: only what happens from now on.
    const live = socket(id);
    const [sync] = await live.waitFor((f) => f.length >= 2);
    expect(sync).toEqual({ type: 'sync', through_seq: last });
    await call('POST', `/api/conversations/${id}/events`, userMessage('four'));
    const frames = await live.waitFor((f) => durable(f).length >= 2);
    expect(durable(frames).map((f) => f.seq)).toEqual([last + 1, last + 2]);
    expect(durable(frames)[0].event.llm_message.content[0].text).toBe('four');
    live.close();
  });

  it('authenticates by query, header and first frame; refuses bad keys 4001, bad parameters 403, unknown ids 4004', async () => {
    const id = await newConversation();
    for (const ws of [socket(id), socket(id, '', { 'X-Session-API-Key': KEY })]) {
      expect((await ws.waitFor((f) => f.length >= 1))[0].type).toBe('sync');
      ws.close();
    }
    const byFrame = socket(id, '?after_seq=-1');
    await byFrame.open();
    byFrame.send({ type: 'auth', session_api_key: KEY });
    expect((await byFrame.waitFor((f) => f.length >= 1))[0]).toEqual({ type: 'sync', from_seq: -1 });
    byFrame.close();

    expect(await socket(id, '?session_api_key=wrong').waitClosed()).toBe(4001);
    expect(await socket(id, '', { 'X-Session-API-Key': 'wrong' }).waitClosed()).toBe(4001);
    const wrongFrame = socket(id, '');
    await wrongFrame.open();
    wrongFrame.send({ type: 'auth', session_api_key: 'wrong' });
    expect(await wrongFrame.waitClosed()).toBe(4001);
    const notAuth = socket(id, '');
    await notAuth.open();
    notAuth.send({ role: 'user', content: [{ type: 'text', text: 'no key' }] });
    expect(await notAuth.waitClosed()).toBe(4001);
    const silent = socket(id, '');
    expect(await silent.waitClosed()).toBe(4001);
    expect(silent.frames).toEqual([]);

    for (const bad of [`/sockets/session/not-a-uuid?session_api_key=${KEY}`, `/sockets/session/${id}?session_api_key=${KEY}&after_seq=abc`, `/sockets/session/${id}?after_seq=1.5`]) {
      expect(await handshakeStatus(`${server.wsUrl}${bad}`)).toBe(403);
    }
    expect(await handshakeStatus(`${server.wsUrl}/sockets/session/${id}?session_api_key=${KEY}&after_seq=%2B3`)).toBe('upgraded');
    const unknown = socket(randomUUID());
    expect(await unknown.waitClosed()).toBe(4004);
    expect(unknown.closeReason).toBe('Conversation not found');
  });

  it("closes 4004 on another tenant's conversation, showing nothing of it", async () => {
    const { key: otherKey } = await createTenant(server);
    const mine = await newConversation();
    await call('POST', `/api/conversations/${mine}/events`, userMessage('private words'));
    const foreign = socket(mine, `?session_api_key=${otherKey}&after_seq=-1`);
    expect(await foreign.waitClosed()).toBe(4004);
    expect(foreign.frames).toEqual([]);
    // The other tenant's own conversation opens with its key, and not with mine.
    const theirs = await newConversation(otherKey);
    const own = socket(theirs, `?session_api_key=${otherKey}`);
    expect((await own.waitFor((f) => f.length >= 1))[0].type).toBe('sync');
    own.close();
    expect(await socket(theirs, `?session_api_key=${KEY}`).waitClosed()).toBe(4004);
  });

  it('takes user messages (appended and run); answers bad frames with error frames and stays open', async () => {
    const id = await newConversation();
    const text = `session inbound ${storage}`;
    llm.script(text, [{ text: 'heard you' }]);
    const ws = socket(id);
    await ws.waitFor((f) => f.length >= 2);
    ws.send({ type: 'auth', session_api_key: KEY }); // redundant auth frames are ignored
    ws.send('{oops');
    ws.send({ role: 'assistant', content: [{ type: 'text', text: 'not allowed' }] });
    ws.send({ role: 'user', content: [{ type: 'text', text }] });
    const frames = await ws.waitFor(finished, 30_000, 'the run to finish');
    const errors = frames.filter((f) => f.type === 'error');
    expect(errors.map((f) => f.code)).toEqual(['JSONDecodeError', 'ValidationError']);
    for (const e of errors) {
      expect(Object.keys(e)).toEqual(['type', 'code', 'detail']);
      expect(typeof e.detail).toBe('string');
    }
    const messages = durable(frames).filter((f) => f.event.kind === 'MessageEvent');
    expect(messages.map((f) => f.event.llm_message.content[0].text)).toEqual([text, 'heard you']);
    expect(ws.closeCode).toBeNull();
    ws.close();
  });

  it('shares the per-conversation subscriber limit with /sockets/events (1013)', async () => {
    const id = await newConversation();
    const open = [socket(id), new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`), socket(id)];
    for (const c of open) await c.waitFor((f) => f.length >= 1);
    const fourth = socket(id);
    expect(await fourth.waitClosed()).toBe(1013);
    expect(fourth.closeReason).toBe('Too many connections for this conversation');
    open[0].close();
    await open[0].waitClosed();
    const again = socket(id);
    await again.waitFor((f) => f.length >= 1);
    for (const c of [again, ...open.slice(1)]) c.close();
  });
});

describe('session socket across gateway replicas (PostgreSQL + Redis)', () => {
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

  it('closes a consumer that stops reading (1013 slow_consumer) without stalling a fast one or the writer; it resumes by after_seq', async () => {
    const id = (await api(a, 'POST', '/api/conversations', { body: startRequest(), key: KEY })).body.id;
    const fast = new SocketClient(`${b.wsUrl}/sockets/session/${id}?session_api_key=${KEY}`);
    const slow = new SocketClient(`${b.wsUrl}/sockets/session/${id}?session_api_key=${KEY}`);
    await fast.waitFor((f) => f.length >= 2);
    await slow.waitFor((f) => f.length >= 2);
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // Enough to fill the kernel's loopback buffers (several MB) and then the 4 KiB allowance.
    const big = 'x'.repeat(128 * 1024);
    const count = 160;
    const started = Date.now();
    for (let i = 0; i < count; i++) {
      const res = await api(a, 'POST', `/api/conversations/${id}/events`, { body: userMessage(`${i} ${big}`), key: KEY });
      expect(res.status).toBe(200);
    }
    const writing = Date.now() - started;
    const fastFrames = await fast.waitFor((f) => durable(f).filter((e) => e.event.kind === 'MessageEvent').length >= count, 30_000, 'all messages on the fast socket');
    expect(durable(fastFrames).map((f) => f.seq)).toEqual(durable(fastFrames).map((_, i) => i));
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await slow.waitClosed(20_000)).toBe(1013);
    expect(slow.closeReason).toBe('slow_consumer');
    const partial = durable(slow.frames);
    expect(partial.length).toBeLessThan(2 * count);
    // Writes never waited for the stalled reader (each one is a loopback HTTP call).
    expect(writing).toBeLessThan(30_000);

    // What the slow one missed, it gets by resuming from its last seq: nothing twice, nothing lost.
    const cursor = partial.length ? partial.at(-1).seq : -1;
    const resumed = new SocketClient(`${b.wsUrl}/sockets/session/${id}?session_api_key=${KEY}&after_seq=${cursor}`);
    await resumed.waitFor((f) => f.some((x) => x.type === 'transient'), 30_000, 'the replay');
    const all = [...partial, ...durable(resumed.frames)];
    expect(all.map((f) => f.seq)).toEqual(durable(fastFrames).map((f) => f.seq));
    expect(all.map((f) => f.event.id)).toEqual(durable(fastFrames).map((f) => f.event.id));
    resumed.close();
    fast.close();
  });

  it('delivers events written through one replica to session sockets of another', async () => {
    const id = (await api(a, 'POST', '/api/conversations', { body: startRequest(), key: KEY })).body.id;
    const ws = new SocketClient(`${b.wsUrl}/sockets/session/${id}?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 2);
    await api(a, 'POST', `/api/conversations/${id}/events`, { body: userMessage('from replica A'), key: KEY });
    const frames = await ws.waitFor((f) => durable(f).some((e) => e.event.kind === 'MessageEvent'));
    expect(durable(frames).find((e) => e.event.kind === 'MessageEvent')).toMatchObject({ seq: 0, event: { llm_message: { content: [{ text: 'from replica A' }] } } });
    ws.close();
  });
});
