import { randomUUID } from 'node:crypto';
import { LlmStub } from '@berth/testing';
import { WebSocket } from 'ws';
import { api, createTenant, SocketClient, startRequest, startServer, STORAGES, storedEvents, TestServer, userMessage } from './support/server';

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
  const stored = (id: string) => storedEvents(server, KEY, id);
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

  it('streams token progress: masked deltas, the durable event with the item id, and item_aborted for a stream the user interrupted', async () => {
    const res = await call('POST', '/api/conversations', {
      agent: { ...agent(), llm: { ...agent().llm, stream: true } },
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      secrets: { DEPLOY_TOKEN: 'tok-3141592653' },
      autotitle: false,
    });
    const id = res.body.id as string;
    const text = `session stream ${storage}`;
    llm.script(text, [{ text: 'The token is tok-3141592653, keep it.' }, { text: 'A long answer that the user cuts short before it ends.', chunkDelayMs: 300 }]);
    const live = socket(id);
    await live.waitFor((f) => f.length >= 2);
    await call('POST', `/api/conversations/${id}/events`, userMessage(text, true));
    await live.waitFor(finished, 30_000, 'the first answer');
    const started = live.frames.filter((f) => f.type === 'item_started');
    expect(started).toHaveLength(1);
    const deltas = live.frames.filter((f) => f.type === 'delta');
    expect(deltas.map((d) => d.order)).toEqual(deltas.map((_, i) => i));
    // A secret split over chunks is held back and masked whole.
    expect(deltas.map((d) => d.content).join('')).toBe('The token is <secret-hidden>, keep it.');
    expect(JSON.stringify(live.frames)).not.toContain('3141592653');
    const answer = durable(live.frames).find((f) => f.event.kind === 'MessageEvent' && f.event.source === 'agent');
    expect(answer.event.id).toBe(started[0].item_id);
    expect(live.frames.indexOf(answer)).toBeGreaterThan(live.frames.indexOf(deltas.at(-1)));

    // The second answer streams slowly; an interrupt aborts its slot.
    await call('POST', `/api/conversations/${id}/events`, userMessage('go on', true));
    const [second] = (await live.waitFor((f) => f.filter((x) => x.type === 'delta').length > deltas.length, 30_000, 'the second stream')).filter((f) => f.type === 'item_started').slice(1);
    expect((await call('POST', `/api/conversations/${id}/interrupt`)).status).toBe(200);
    const aborted = (await live.waitFor((f) => f.some((x) => x.type === 'item_aborted'), 30_000, 'item_aborted')).find((f) => f.type === 'item_aborted');
    expect(aborted).toEqual({ type: 'item_aborted', item_id: second.item_id, attempt: 1, reason: 'cancelled' });
    expect(durable(live.frames).some((f) => f.event.id === second.item_id)).toBe(false);
    // Progress is live only: a replay has none of it, and the event socket gets StreamingDeltaEvents instead.
    const replay = socket(id, `?session_api_key=${KEY}&after_seq=-1`);
    const replayed = await replay.waitFor((f) => f.some((x) => x.type === 'transient'));
    expect(replayed.filter((f) => !['sync', 'durable', 'transient'].includes(f.type))).toEqual([]);
    replay.close();
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
    // seq 0 is the SystemPromptEvent written before the first message (OpenHands' order).
    expect(durable(frames).find((e) => e.event.kind === 'MessageEvent')).toMatchObject({ seq: 1, event: { llm_message: { content: [{ text: 'from replica A' }] } } });
    ws.close();
  });
});

describe('session socket beside the reference server (same scenario, same scripted LLM)', () => {
  const { startReferenceServer } = require('../scripts/reference-server.js');
  const llm = new LlmStub();
  let berth: TestServer;
  let reference: { url: string; apiKey: string; workspacePath: string; stop(): Promise<void> };

  beforeAll(async () => {
    await llm.start();
    [berth, reference] = await Promise.all([startServer('embedded', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all' }), startReferenceServer({ apiKey: KEY })]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([berth?.close(), reference?.stop()]);
    await llm.stop();
  });

  /** Frame types with each run of durable frames as one. */
  const shape = (frames: any[]) => frames.map((f) => f.type).filter((t, i, all) => t !== 'durable' || all[i - 1] !== 'durable');
  const keysByType = (frames: any[]) => [...new Set(frames.map((f) => `${f.type}: ${Object.keys(f).join(',')}`))].sort();
  const typesOf = (frame: any) => Object.fromEntries(Object.entries(frame).map(([k, v]) => [k, typeof v]));

  async function scenario(name: 'berth' | 'reference') {
    const url = name === 'berth' ? berth.url : reference.url;
    const wsUrl = url.replace('http', 'ws');
    const text = `session side by side ${name}`;
    llm.script(text, [{ toolCalls: [{ name: 'terminal', arguments: { command: 'echo side-by-side' } }], delayMs: 1000 }, { text: 'done', delayMs: 300 }]);
    const created = await api({ url }, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { kind: 'LocalWorkspace', working_dir: name === 'berth' ? '/workspace/project' : reference.workspacePath },
      },
    });
    expect(created.status).toBeLessThan(300);
    const id = created.body.id;
    const open = (query: string, headers: Record<string, string> = {}) => new SocketClient(`${wsUrl}/sockets/session/${id}${query}`, headers);
    const live = open(`?session_api_key=${KEY}`);
    await live.waitFor((f) => f.length >= 2);
    await api({ url }, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage(text, true) });
    // Mid-run (the LLM holds its first answer for a second): resume after seq 1.
    await live.waitFor((f) => durable(f).length >= 3, 30_000, 'the run to start');
    const mid = open(`?session_api_key=${KEY}&after_seq=1`);
    const isDone = (f: any[]) => f.at(-1)?.type === 'transient' && durable(f).some((e) => e.event.value === 'finished');
    await live.waitFor(isDone, 60_000, 'the run to finish');
    await mid.waitFor(isDone, 30_000, 'the resumed socket to see the end');
    const full = open(`?after_seq=-1`, { 'X-Session-API-Key': KEY });
    await full.waitFor((f) => f.at(-1)?.type === 'transient', 30_000, 'the replay');
    for (const ws of [live, mid, full]) ws.close();

    const bad = open('');
    await bad.open();
    bad.send('{oops');
    const firstFrame = open('');
    await firstFrame.open();
    firstFrame.send({ type: 'auth', session_api_key: 'wrong' });
    const errors = open(`?session_api_key=${KEY}`);
    await errors.waitFor((f) => f.length >= 2);
    errors.send('{oops');
    const [errorFrame] = (await errors.waitFor((f) => f.some((x) => x.type === 'error'))).filter((x) => x.type === 'error');
    errors.close();
    const unknown = new SocketClient(`${wsUrl}/sockets/session/${randomUUID()}?session_api_key=${KEY}`);
    return {
      live: live.frames,
      mid: mid.frames,
      full: full.frames,
      errorFrame,
      codes: {
        garbageFirstFrame: await bad.waitClosed(),
        wrongFirstFrameKey: await firstFrame.waitClosed(),
        unknown: [await unknown.waitClosed(), unknown.closeReason],
        badId: await handshakeStatus(`${wsUrl}/sockets/session/not-a-uuid?session_api_key=${KEY}`),
        badAfterSeq: await handshakeStatus(`${wsUrl}/sockets/session/${id}?session_api_key=${KEY}&after_seq=x`),
        wrongQueryKey: await handshakeStatus(`${wsUrl}/sockets/session/${id}?session_api_key=wrong`),
      },
    };
  }

  it('sends the same frames in the same order, with the same keys, value types and close codes', async () => {
    const ours = await scenario('berth');
    const theirs = await scenario('reference');
    for (const part of ['live', 'mid', 'full'] as const) {
      expect({ part, shape: shape(ours[part]) }).toEqual({ part, shape: shape(theirs[part]) });
      expect({ part, keys: keysByType(ours[part]) }).toEqual({ part, keys: keysByType(theirs[part]) });
      for (const frames of [ours[part], theirs[part]]) {
        const seqs = durable(frames).map((f) => f.seq);
        expect(seqs).toEqual(seqs.map((_, i) => seqs[0] + i));
      }
    }
    expect(shape(ours.live)).toEqual(['sync', 'transient', 'durable', 'transient']);
    expect(shape(ours.mid)).toEqual(['sync', 'durable', 'transient', 'durable', 'transient']);
    expect(ours.live[0]).toEqual(theirs.live[0]); // {type: 'sync'}: an empty log, no cursor
    for (const part of ['mid', 'full'] as const) {
      expect(typesOf(ours[part][0])).toEqual(typesOf(theirs[part][0]));
      expect(ours[part][0].from_seq).toBe(theirs[part][0].from_seq);
      expect(durable(ours[part])[0].seq).toBe(durable(theirs[part])[0].seq);
    }
    // Both replay the whole log, and it ends the same way.
    expect(durable(ours.full).map((f) => f.event)).toEqual(durable(ours.live).map((f) => f.event));
    expect(durable(theirs.full).map((f) => f.event)).toEqual(durable(theirs.live).map((f) => f.event));
    for (const r of [ours, theirs]) {
      expect(durable(r.full).at(-1).event).toMatchObject({ kind: 'ConversationStateUpdateEvent', key: 'execution_status', value: 'finished' });
      expect(r.full.at(-1).event).toMatchObject({ kind: 'ConversationStateUpdateEvent', key: 'full_state' });
      expect(Object.keys(r.full.at(-1).event.value)).toEqual(expect.arrayContaining(['id', 'agent', 'execution_status', 'stats']));
    }
    expect(typesOf(ours.errorFrame)).toEqual(typesOf(theirs.errorFrame));
    expect(ours.errorFrame.code).toBe(theirs.errorFrame.code);
    // One difference, kept on purpose: a wrong key in the query or header is refused after the
    // handshake with 4001, which OpenHands' clients treat as final, where the reference answers 403.
    expect(theirs.codes.wrongQueryKey).toBe(403);
    expect(ours.codes.wrongQueryKey).toBe('upgraded');
    expect({ ...ours.codes, wrongQueryKey: 403 }).toEqual(theirs.codes);
  }, 180_000);

  /** A streaming run's frames on a live socket: an answer with reasoning, then one with a tool call. */
  async function streamingRun(name: 'berth' | 'reference') {
    const url = name === 'berth' ? berth.url : reference.url;
    const text = `session streaming ${name}`;
    llm.script(text, [
      { reasoning: 'The user wants a listing.', text: 'Listing the folder now.', toolCalls: [{ name: 'terminal', arguments: { command: 'ls' } }] },
      { text: 'The folder is listed, all done here.' },
    ]);
    const created = await api({ url }, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0, stream: true }, tools: [{ name: 'terminal' }] },
        workspace: { kind: 'LocalWorkspace', working_dir: name === 'berth' ? '/workspace/streaming' : reference.workspacePath },
        autotitle: false,
      },
    });
    expect(created.status).toBeLessThan(300);
    const live = new SocketClient(`${url.replace('http', 'ws')}/sockets/session/${created.body.id}?session_api_key=${KEY}`);
    await live.waitFor((f) => f.length >= 2);
    await api({ url }, 'POST', `/api/conversations/${created.body.id}/events`, { key: KEY, body: userMessage(text, true) });
    await live.waitFor((f) => f.at(-1)?.type === 'transient' && durable(f).some((e) => e.event.value === 'finished'), 60_000, 'the run to finish');
    live.close();
    return live.frames;
  }

  it('streams token progress as the reference does: item_started, ordered deltas of reasoning and text, and the durable event with the item id', async () => {
    const ours = await streamingRun('berth');
    const theirs = await streamingRun('reference');
    const progress = (frames: any[]) => frames.filter((f) => ['item_started', 'delta', 'item_aborted'].includes(f.type));
    /** Per item: what its deltas spell by kind, whether a durable event took its id, and where it was anchored. */
    const items = (frames: any[]) =>
      progress(frames)
        .filter((f) => f.type === 'item_started')
        .map((start) => {
          const deltas = progress(frames).filter((f) => f.type === 'delta' && f.item_id === start.item_id);
          const closing = frames.find((f) => f.type === 'durable' && f.event.id === start.item_id);
          const spelled = (kind: string) => deltas.filter((d) => d.kind === kind).map((d) => d.content).join('');
          return {
            text: spelled('text'),
            reasoning: spelled('reasoning'),
            orders: deltas.map((d) => d.order).join(','),
            closedBy: closing?.event.kind ?? null,
            anchoredAfterPrevious: start.anchor_seq === Math.max(...durable(frames.slice(0, frames.indexOf(start))).map((f) => f.seq)),
          };
        });
    expect(items(ours)).toEqual(items(theirs));
    expect(items(ours)).toEqual([
      { text: 'Listing the folder now.', reasoning: 'The user wants a listing.', orders: expect.any(String), closedBy: 'ActionEvent', anchoredAfterPrevious: true },
      { text: 'The folder is listed, all done here.', reasoning: '', orders: expect.any(String), closedBy: 'MessageEvent', anchoredAfterPrevious: true },
    ]);
    const keysOf = (frames: any[]) => [...new Set(progress(frames).map((f) => `${f.type}: ${Object.keys(f).join(',')}`))].sort();
    expect(keysOf(ours)).toEqual(keysOf(theirs));
    // The stored reasoning is what streamed.
    const action = durable(ours).find((f) => f.event.kind === 'ActionEvent');
    expect(action.event.reasoning_content).toBe('The user wants a listing.');
  }, 180_000);
});
