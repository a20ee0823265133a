import { EventRecorder } from '@berth/bus';
import { EventPageSchema, naiveTimestamp, newUuid, OHEvent } from '@berth/contracts';
import { randomUUID } from 'node:crypto';
import { api, SocketClient, startRequest, STORAGES, useServer, userMessage } from './support/server';

const KEY = 'events-test-key';

/** An agent action as the worker records it (contract §6.2). */
function actionEvent(command: string): OHEvent {
  const callId = `call_${randomUUID().slice(0, 8)}`;
  return {
    id: newUuid(),
    timestamp: naiveTimestamp(),
    source: 'agent',
    thought: [{ cache_prompt: false, type: 'text', text: 'running it' }],
    action: { command, is_input: false, reset: false, kind: 'TerminalAction' },
    tool_name: 'terminal',
    tool_call_id: callId,
    tool_call: { id: callId, name: 'terminal', arguments: JSON.stringify({ command }), origin: 'completion' },
    llm_response_id: 'resp_1',
    security_risk: 'UNKNOWN',
    kind: 'ActionEvent',
  };
}

describe.each(STORAGES)('events REST (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY }, KEY);
  const call = ctx.call;

  it('sends messages and searches with every filter', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('Alpha apples'))).body).toEqual({ success: true });
    const middle = naiveTimestamp();
    await call('POST', `/api/conversations/${id}/events`, userMessage('Beta bananas'));
    await call('POST', `/api/conversations/${id}/events`, { role: 'user', content: [{ type: 'text', text: 'Gamma' }, { type: 'image', image_urls: ['data:image/png;base64,AAAA'] }] });
    await ctx.server.app.get(EventRecorder).record(id, actionEvent('ls'));

    const all = await call('GET', `/api/conversations/${id}/events/search`);
    expect(EventPageSchema.safeParse(all.body).success).toBe(true);
    // The agent made ready before the first message (its SystemPromptEvent), three messages with their state updates, the action.
    expect(all.body.items.length).toBe(8);
    expect(all.body.next_page_id).toBeNull();

    const search = async (query: string) => (await call('GET', `/api/conversations/${id}/events/search?${query}`)).body.items;
    expect((await search('kind=MessageEvent')).length).toBe(3);
    expect((await search('kind=openhands.sdk.event.llm_convertible.message.MessageEvent')).length).toBe(3);
    expect((await search('kind=openhands.sdk.event.llm_convertible.action.ActionEvent'))[0].tool_name).toBe('terminal');
    expect((await search('kind=NoSuchEvent')).length).toBe(0);
    expect((await search('source=agent')).map((e: OHEvent) => e.kind)).toEqual(['SystemPromptEvent', 'ActionEvent']);
    expect((await search('source=environment')).every((e: OHEvent) => e.kind === 'ConversationStateUpdateEvent')).toBe(true);
    expect((await search('body=BANANAS')).map((e: any) => e.llm_message.content[0].text)).toEqual(['Beta bananas']);
    const after = await search(`timestamp__gte=${encodeURIComponent(middle)}&kind=MessageEvent`);
    expect(after.map((e: any) => e.llm_message.content[0].text)).toEqual(['Beta bananas', 'Gamma']);
    const before = await search(`timestamp__lt=${encodeURIComponent(middle)}&kind=MessageEvent`);
    expect(before.map((e: any) => e.llm_message.content[0].text)).toEqual(['Alpha apples']);
    // A tz-aware bound is converted to server-local time.
    const utcMiddle = new Date(new Date(middle.slice(0, 23)).getTime()).toISOString();
    expect((await search(`timestamp__gte=${encodeURIComponent(utcMiddle)}&kind=MessageEvent`)).length).toBe(2);

    const desc = await search('sort_order=TIMESTAMP_DESC');
    expect(desc.map((e: OHEvent) => e.id)).toEqual([...all.body.items].reverse().map((e: OHEvent) => e.id));

    expect((await call('GET', `/api/conversations/${id}/events/count`)).body).toBe(8);
    expect((await call('GET', `/api/conversations/${id}/events/count?kind=MessageEvent&body=apples`)).body).toBe(1);

    for (const bad of ['limit=0', 'limit=101', 'source=robot', 'sort_order=UP', 'timestamp__gte=yesterday', 'timestamp__lt=2024-02-30T00:00:00']) {
      expect((await call('GET', `/api/conversations/${id}/events/search?${bad}`)).status).toBe(422);
    }
    expect((await call('GET', `/api/conversations/${randomUUID()}/events/search`)).status).toBe(404);
    expect((await call('GET', `/api/conversations/${randomUUID()}/events/count`)).body.detail).toMatch(/^Conversation not found: /);
  });

  it('pages by event id in both directions', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    for (let i = 0; i < 5; i++) await call('POST', `/api/conversations/${id}/events`, userMessage(`m${i}`));
    const walk = async (order: string) => {
      const ids: string[] = [];
      let page = await call('GET', `/api/conversations/${id}/events/search?kind=MessageEvent&limit=2&sort_order=${order}`);
      for (;;) {
        ids.push(...page.body.items.map((e: OHEvent) => e.id));
        if (!page.body.next_page_id) return ids;
        page = await call('GET', `/api/conversations/${id}/events/search?kind=MessageEvent&limit=2&sort_order=${order}&page_id=${page.body.next_page_id}`);
      }
    };
    const asc = await walk('TIMESTAMP');
    expect(asc.length).toBe(5);
    expect(await walk('TIMESTAMP_DESC')).toEqual([...asc].reverse());
  });

  it('answers a search page as stored JSON, byte for byte what serializing the parsed events gives', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    await call('POST', `/api/conversations/${id}/events`, userMessage('ünïcødé "quoted" \\ back\nslash 50% a_b \u2028'));
    await ctx.server.app.get(EventRecorder).record(id, actionEvent('printf "%s" \'{"not":"json"}\''));
    await call('POST', `/api/conversations/${id}/events`, userMessage('last'));
    const url = `/api/conversations/${id}/events/search?limit=2`;
    const res = await fetch(ctx.server.url + url, { headers: { 'X-Session-API-Key': KEY } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const text = await res.text();
    const page = JSON.parse(text);
    expect(EventPageSchema.safeParse(page).success).toBe(true);
    expect(Object.keys(page)).toEqual(['items', 'next_page_id']);
    expect(page.items).toHaveLength(2);
    expect(typeof page.next_page_id).toBe('string');
    // The same events through the parsed path (get by id, serialized by Fastify) and the same page serialized.
    const parsed = (await call('GET', `/api/conversations/${id}/events`, page.items.map((e: OHEvent) => e.id))).body;
    expect(text).toBe(JSON.stringify({ items: parsed, next_page_id: page.next_page_id }));
    // Walking every page finds every event once.
    const seen = [...page.items];
    for (let next = page.next_page_id; next; ) {
      const more = (await call('GET', `${url}&page_id=${next}`)).body;
      seen.push(...more.items);
      next = more.next_page_id;
    }
    expect(new Set(seen.map((e: OHEvent) => e.id)).size).toBe((await call('GET', `/api/conversations/${id}/events/count`)).body);
    // Errors stay OpenHands-style JSON.
    const missing = await call('GET', `/api/conversations/${randomUUID()}/events/search`);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ detail: expect.stringContaining('Conversation not found') });
    expect((await call('GET', `/api/conversations/${id}/events/search?limit=0`)).status).toBe(422);
  });

  it('filters body by plain substring: LIKE wildcards match only themselves, in search and count alike', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    for (const text of ['50% off', '500 off', 'a_b', 'axb']) await call('POST', `/api/conversations/${id}/events`, userMessage(text));
    for (const [body, expected] of [['50%', ['50% off']], ['a_b', ['a_b']], ['%', ['50% off']], ['_', ['a_b']]] as const) {
      const q = `body=${encodeURIComponent(body)}`;
      const found = (await call('GET', `/api/conversations/${id}/events/search?${q}`)).body.items.map((e: OHEvent) => (e.llm_message as { content: { text: string }[] }).content[0].text);
      expect(found).toEqual(expected);
      expect((await call('GET', `/api/conversations/${id}/events/count?${q}`)).body).toBe(expected.length);
    }
  });

  it('gets one event, and several by JSON body or query, with null for unknown ids', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    await call('POST', `/api/conversations/${id}/events`, userMessage('one'));
    const [message] = (await call('GET', `/api/conversations/${id}/events/search?kind=MessageEvent`)).body.items;
    expect((await call('GET', `/api/conversations/${id}/events/${message.id}`)).body).toEqual(message);
    expect((await call('GET', `/api/conversations/${id}/events/nope`)).status).toBe(404);
    const byBody = await call('GET', `/api/conversations/${id}/events`, [message.id, 'missing']);
    expect(byBody.body).toEqual([message, null]);
    const byQuery = await call('GET', `/api/conversations/${id}/events?event_ids=missing&event_ids=${message.id}`);
    expect(byQuery.body).toEqual([null, message]);
    expect((await call('GET', `/api/conversations/${id}/events`, { not: 'a list' })).status).toBe(422);
  });

  it('validates messages: user role only, known content types, no unknown fields', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    expect((await call('POST', `/api/conversations/${id}/events`, { role: 'assistant', content: [] })).status).toBe(422);
    expect((await call('POST', `/api/conversations/${id}/events`, { content: [{ type: 'video', url: 'x' }] })).status).toBe(422);
    expect((await call('POST', `/api/conversations/${id}/events`, { content: [{ type: 'text', text: 'x', extra: 1 }] })).status).toBe(422);
    expect((await call('POST', `/api/conversations/${id}/events`, { ...userMessage('x'), surprise: true })).status).toBe(422);
    expect((await call('POST', `/api/conversations/${randomUUID()}/events`, userMessage('x'))).status).toBe(404);
    expect((await call('GET', `/api/conversations/${id}/events/count`)).body).toBe(0);
  });

  it('moves a finished conversation back to idle on a new message and runs with run:true', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    await call('POST', `/api/conversations/${id}/run`);
    await ctx.server.app.get((await import('@berth/persistence')).Database).prisma.conversation.update({ where: { id }, data: { executionStatus: 'finished' } });
    await call('POST', `/api/conversations/${id}/events`, userMessage('again'));
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('idle');
    await call('POST', `/api/conversations/${id}/events`, userMessage('and run', true));
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('running');
    // A message to a running conversation is accepted (the run reads it), not refused.
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('more', true))).status).toBe(200);
  });

  it('rejects pending actions with UserRejectObservations and accepts by running', async () => {
    const id = (await call('POST', '/api/conversations', startRequest({ confirmation_policy: { kind: 'AlwaysConfirm' } }))).body.id;
    const recorder = ctx.server.app.get(EventRecorder);
    const answered = actionEvent('echo done');
    await recorder.record(id, answered);
    await recorder.record(id, {
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'environment',
      tool_name: 'terminal',
      tool_call_id: answered.tool_call_id,
      action_id: answered.id,
      observation: { content: [{ type: 'text', text: 'done' }], is_error: false, kind: 'TerminalObservation' },
      kind: 'ObservationEvent',
    });
    const pending = [actionEvent('rm -rf build'), actionEvent('make')];
    for (const a of pending) await recorder.record(id, a);
    await ctx.server.app.get((await import('@berth/persistence')).Database).prisma.conversation.update({ where: { id }, data: { executionStatus: 'waiting_for_confirmation' } });

    const ws = new SocketClient(`${ctx.server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 1);
    expect((await call('POST', `/api/conversations/${id}/events/respond_to_confirmation`, { accept: false, reason: 'too risky' })).body).toEqual({ success: true });
    const rejections = (await call('GET', `/api/conversations/${id}/events/search?kind=UserRejectObservation`)).body.items;
    expect(rejections.map((r: any) => r.action_id)).toEqual(pending.map((a) => a.id));
    expect(rejections[0]).toMatchObject({ rejection_reason: 'too risky', rejection_source: 'user', tool_name: 'terminal', source: 'environment' });
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('idle');
    await ws.waitFor((f) => f.filter((e) => e.kind === 'UserRejectObservation').length === 2);
    ws.close();

    expect((await call('POST', `/api/conversations/${id}/events/respond_to_confirmation`, { accept: true })).body).toEqual({ success: true });
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('running');
    // Accepting again while running is not an error.
    expect((await call('POST', `/api/conversations/${id}/events/respond_to_confirmation`, { accept: true })).status).toBe(200);
    expect((await call('POST', `/api/conversations/${id}/events/respond_to_confirmation`, { accept: 'yes' })).status).toBe(422);
  });

  it('reads the final response from the last finish action or agent message', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    const recorder = ctx.server.app.get(EventRecorder);
    await recorder.record(id, {
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'agent',
      llm_message: { role: 'assistant', content: [{ cache_prompt: false, type: 'text', text: 'Thinking aloud' }], thinking_blocks: [] },
      activated_skills: [],
      extended_content: [],
      kind: 'MessageEvent',
    });
    expect((await call('GET', `/api/conversations/${id}/agent_final_response`)).body).toEqual({ response: 'Thinking aloud' });
    const finish = { ...actionEvent('x'), tool_name: 'finish', action: { message: 'Heads.', kind: 'FinishAction' } };
    await recorder.record(id, finish);
    expect((await call('GET', `/api/conversations/${id}/agent_final_response`)).body).toEqual({ response: 'Heads.' });
  });
});
