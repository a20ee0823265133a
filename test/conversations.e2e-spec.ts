import { ConversationInfoSchema, ConversationPageSchema } from '@berth/contracts';
import { randomUUID } from 'node:crypto';
import { systemPromptEventId } from '@berth/agent';
import { until } from '@berth/testing';
import { AGENT, api, createTenant, startRequest, STORAGES, useServer, userMessage } from './support/server';

const KEY = 'conv-test-key';

describe.each(STORAGES)('conversations REST (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY }, KEY);
  const call = ctx.call;

  it('creates a conversation (201), returns every ConversationInfo field and never the API key', async () => {
    const res = await call('POST', '/api/conversations', startRequest({ tags: { team: 'core' } }));
    expect(res.status).toBe(201);
    const info = ConversationInfoSchema.parse(res.body);
    expect(info.execution_status).toBe('idle');
    expect(info.agent.llm.model).toBe('openai/gpt-4o-mini');
    expect((info.agent.llm as Record<string, unknown>).api_key).toBeNull();
    expect(info.tags).toEqual({ team: 'core' });
    expect(info.persistence_dir).toMatch(/[0-9a-f]{32}$/);
    expect(info.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(JSON.stringify(res.body)).not.toContain('sk-test-should-never-leak');

    const got = await call('GET', `/api/conversations/${info.id}`);
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(info.id);
    // 32-hex ids are accepted in paths too.
    expect((await call('GET', `/api/conversations/${info.id.replace(/-/g, '')}`)).body.id).toBe(info.id);
  });

  it('stores LLM keys and secrets encrypted at rest', async () => {
    const created = await call('POST', '/api/conversations', startRequest({ secrets: { GITHUB_TOKEN: 'ghp_plaintext' } }));
    const db = ctx.server.app.get((await import('@berth/persistence')).Database);
    const row = await db.prisma.conversation.findUniqueOrThrow({ where: { id: created.body.id } });
    const stored = JSON.stringify(row.agent) + JSON.stringify(row.secrets);
    expect(stored).not.toContain('sk-test-should-never-leak');
    expect(stored).not.toContain('ghp_plaintext');
    expect((row.agent as any).llm.api_key).toMatch(/^gAAAAA/);
    expect(created.body.secret_registry.secret_sources.GITHUB_TOKEN).toEqual({ description: null, value: null, kind: 'StaticSecret' });
  });

  it("lists the agent's LLM in stats with zero metrics once the agent is ready (a first message), as OpenHands", async () => {
    const created = await call('POST', '/api/conversations', startRequest());
    expect(created.body.stats).toEqual({ usage_to_metrics: {} });
    const id = created.body.id;
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('hello'))).body).toEqual({ success: true });
    const zero = {
      model_name: 'openai/gpt-4o-mini',
      accumulated_cost: 0,
      max_budget_per_task: null,
      accumulated_token_usage: expect.objectContaining({ model: 'openai/gpt-4o-mini', prompt_tokens: 0, completion_tokens: 0, response_id: '' }),
      costs: [],
      response_latencies: [],
      token_usages: [],
    };
    expect((await call('GET', `/api/conversations/${id}`)).body.stats).toEqual({ usage_to_metrics: { default: zero } });
    const withMessage = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('first') }));
    expect(withMessage.body.stats).toEqual({ usage_to_metrics: { default: zero } });
  });

  it('is idempotent on conversation_id: 200 and nothing changed', async () => {
    const id = randomUUID();
    const first = await call('POST', '/api/conversations', startRequest({ conversation_id: id, tags: { v: '1' } }));
    expect(first.status).toBe(201);
    expect(first.body.id).toBe(id);
    const again = await call('POST', '/api/conversations', startRequest({ conversation_id: id, tags: { v: '2' } }));
    expect(again.status).toBe(200);
    expect(again.body.tags).toEqual({ v: '1' });
  });

  it('does not send the initial message again on a repeated or racing create (idempotent_conversation_create_v1)', async () => {
    const kindsOf = async (id: string) => (await call('GET', `/api/conversations/${id}/events/search`)).body.items.map((e: any) => e.kind);
    const id = randomUUID();
    const body = startRequest({ conversation_id: id, initial_message: userMessage('only once') });
    const first = await call('POST', '/api/conversations', body);
    expect(first.status).toBe(201);
    const again = await call('POST', '/api/conversations', body);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id, last_user_message_id: first.body.last_user_message_id, execution_status: 'running' });
    expect(await kindsOf(id)).toEqual(['SystemPromptEvent', 'MessageEvent', 'ConversationStateUpdateEvent', 'ConversationStateUpdateEvent']);

    // Three creates of one new id at once: one makes it, the others get it; one message, one sandbox.
    const raced = randomUUID();
    const answers = await Promise.all([1, 2, 3].map(() => call('POST', '/api/conversations', startRequest({ conversation_id: raced, initial_message: userMessage('raced') }))));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 201]);
    expect(new Set(answers.map((a) => a.body.id))).toEqual(new Set([raced]));
    expect(await kindsOf(raced)).toEqual(['SystemPromptEvent', 'MessageEvent', 'ConversationStateUpdateEvent', 'ConversationStateUpdateEvent']);
    const db = ctx.server.app.get((await import('@berth/persistence')).Database);
    const row = await db.prisma.conversation.findUniqueOrThrow({ where: { id: raced } });
    const made = await db.prisma.sandbox.findMany({ where: { kind: 'conversation', tenantId: row.tenantId, createdAt: { gte: new Date(Date.now() - 60_000) } } });
    expect(made.filter((s) => s.id === row.sandboxId)).toHaveLength(1);
    // The losers' sandboxes are gone again: every conversation sandbox made here belongs to a conversation.
    const owners = await db.prisma.conversation.findMany({ where: { sandboxId: { in: made.map((s) => s.id) } }, select: { sandboxId: true } });
    expect(made.map((s) => s.id).sort()).toEqual(owners.map((o) => o.sandboxId).sort());

    // Another tenant cannot make a conversation under that id, nor learn anything of it: 409, and nothing changed.
    const other = await createTenant(ctx.server);
    const foreign = await api(ctx.server, 'POST', '/api/conversations', { body: body, key: other.key });
    expect(foreign.status).toBe(409);
    expect(foreign.body).toEqual({ detail: `Conversation id already in use: ${id}` });
    expect((await api(ctx.server, 'GET', `/api/conversations/${id}`, { key: other.key })).status).toBe(404);
    expect(await kindsOf(id)).toHaveLength(4);
  });

  it("records the agent's SystemPromptEvent before the initial message, then queues the run (OpenHands' order)", async () => {
    const res = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('Flip a coin') }));
    expect(res.status).toBe(201);
    expect(res.body.execution_status).toBe('running');
    const events = await call('GET', `/api/conversations/${res.body.id}/events/search`);
    expect(events.body.items.map((e: any) => e.kind)).toEqual([
      'SystemPromptEvent',
      'MessageEvent',
      'ConversationStateUpdateEvent',
      'ConversationStateUpdateEvent',
    ]);
    const [prompt, message, lastMessage, status] = events.body.items;
    expect(prompt).toMatchObject({ id: systemPromptEventId(res.body.id), source: 'agent' });
    expect(prompt.tools.map((t: any) => t.kind).sort()).toEqual(['FileEditorTool', 'FinishTool', 'TaskTrackerTool', 'TerminalTool', 'ThinkTool']);
    // The agent is told where it works: inside the conversation's own sandbox, started for it.
    expect(prompt.system_prompt.text).toContain(`${ctx.server.dataDir}/sandboxes/${res.body.sandbox_id}/workspace/project`);
    expect(message.llm_message).toEqual({
      role: 'user',
      content: [{ cache_prompt: false, type: 'text', text: 'Flip a coin' }],
      thinking_blocks: [],
    });
    expect(lastMessage).toMatchObject({ key: 'last_user_message_id', value: message.id });
    expect(res.body.last_user_message_id).toBe(message.id);
    expect(status).toMatchObject({ key: 'execution_status', value: 'running', source: 'environment' });
    expect((await call('GET', `/api/conversations/${res.body.id}/runtime`)).body).toMatchObject({ runtime_status: 'available', sandbox_kind: 'conversation' });
  });

  it("writes the SystemPromptEvent before the first message sent later, once, and resets a finished conversation to idle before a new one", async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    expect((await call('GET', `/api/conversations/${id}/events/search`)).body.items).toEqual([]);
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('first'))).body).toEqual({ success: true });
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('second'))).status).toBe(200);
    const db = ctx.server.app.get((await import('@berth/persistence')).Database);
    await db.prisma.conversation.update({ where: { id }, data: { executionStatus: 'finished' } });
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('third'))).status).toBe(200);
    const kinds = (await call('GET', `/api/conversations/${id}/events/search`)).body.items.map((e: any) =>
      e.kind === 'ConversationStateUpdateEvent' ? `${e.key}${e.key === 'execution_status' ? `=${e.value}` : ''}` : e.kind,
    );
    expect(kinds).toEqual([
      'SystemPromptEvent',
      'MessageEvent',
      'last_user_message_id',
      'MessageEvent',
      'last_user_message_id',
      'execution_status=idle',
      'MessageEvent',
      'last_user_message_id',
    ]);
  });

  it('rejects a conversation_runtime other than local, as OpenHands', async () => {
    const res = await call('POST', '/api/conversations', startRequest({ conversation_runtime: 'docker' }));
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.body.detail)).toContain('This server only runs local conversations');
    expect((await call('POST', '/api/conversations', startRequest({ conversation_runtime: 'local' }))).status).toBe(201);
    expect((await call('POST', '/api/conversations', startRequest({ conversation_runtime: null }))).status).toBe(201);
  });

  it('reports runtime_info in GET, search and batch rows (null in the answer of POST, as OpenHands)', async () => {
    const fresh = await call('POST', '/api/conversations', startRequest());
    expect(fresh.body.runtime_info).toBeNull();
    const started = await call('POST', '/api/conversations', startRequest({ initial_message: userMessage('runtime rows') }));
    expect(started.body.runtime_info).toBeNull();
    const none = { runtime_status: 'missing', can_resume: true, runtime_error: null, sandbox_id: null, sandbox_kind: null, sandbox_status: null, driver: 'local' };
    const running = { runtime_status: 'available', can_resume: true, runtime_error: null, sandbox_id: started.body.sandbox_id, sandbox_kind: 'conversation', sandbox_status: 'running', driver: 'local' };
    expect((await call('GET', `/api/conversations/${fresh.body.id}`)).body.runtime_info).toEqual(none);
    expect((await call('GET', `/api/conversations/${started.body.id}`)).body.runtime_info).toEqual(running);
    const batch = (await call('GET', `/api/conversations?ids=${started.body.id}&ids=${fresh.body.id}`)).body;
    expect(batch.map((c: any) => c.runtime_info)).toEqual([running, none]);
    const page = (await call('GET', '/api/conversations/search?limit=100')).body.items;
    expect(page.find((c: any) => c.id === started.body.id).runtime_info).toEqual(running);
    expect(page.find((c: any) => c.id === fresh.body.id).runtime_info).toEqual(none);
    for (const c of page) expect(ConversationInfoSchema.shape.runtime_info.safeParse(c.runtime_info).success).toBe(true);
  });

  it('advertises exactly the capabilities that are true of Berth in /server_info', async () => {
    const info = (await call('GET', '/server_info')).body;
    expect(info.capabilities).toEqual([
      'conversation_runtime_routes_v1',
      'idempotent_conversation_create_v1',
      'tool_catalog_v1',
      'profile_secret_scope_v1',
      'agent_profile_draft_materialize_v1',
      'agent_launch_pipeline_v1',
    ]);
    expect(info).toMatchObject({ version: '1.58.2', conversation_runtime: 'local', available_conversation_runtimes: [], app_backend_ingress_url: null });
  });

  it('answers 422 with OpenHands-style details for invalid bodies', async () => {
    const missing = await call('POST', '/api/conversations', { agent: startRequest().agent });
    expect(missing.status).toBe(422);
    expect(missing.body.detail[0]).toMatchObject({ type: 'missing', loc: ['body', 'workspace'], msg: 'Field required' });

    const noAgent = await call('POST', '/api/conversations', { workspace: { working_dir: '/w' } });
    expect(noAgent.status).toBe(422);
    expect(JSON.stringify(noAgent.body.detail)).toContain('One of `agent`, `agent_settings`, or `agent_profile_id` must be provided');

    const wrongType = await call('POST', '/api/conversations', startRequest({ max_iterations: 'many' }));
    expect(wrongType.status).toBe(422);
    expect(wrongType.body.detail[0].loc).toEqual(['body', 'max_iterations']);

    const badJson = await api(ctx.server, 'POST', '/api/conversations', { rawBody: '{"agent":', key: KEY });
    expect(badJson.status).toBe(422);
    expect(badJson.body.detail[0]).toMatchObject({ type: 'json_invalid', msg: 'JSON decode error' });

    const badTag = await call('POST', '/api/conversations', startRequest({ tags: { 'Not-Valid': 'x' } }));
    expect(badTag.status).toBe(422);

    const badId = await call('POST', '/api/conversations', startRequest({ conversation_id: 'nope' }));
    expect(badId.status).toBe(422);

    // Echoed input never carries the key.
    const echoed = await call('POST', '/api/conversations', { agent: { llm: { model: 5, api_key: 'sk-echo-me-not' } }, workspace: { working_dir: '/w' } });
    expect(echoed.status).toBe(422);
    expect(JSON.stringify(echoed.body)).not.toContain('sk-echo-me-not');
  });

  it('refuses oversized bodies with 413 and writes nothing', async () => {
    const before = (await call('GET', '/api/conversations/count')).body;
    const huge = JSON.stringify(startRequest({ tags: { big: 'x'.repeat(256) }, agent_definitions: ['y'.repeat(11 * 1024 * 1024)] }));
    const res = await api(ctx.server, 'POST', '/api/conversations', { rawBody: huge, key: KEY });
    expect(res.status).toBe(413);
    expect(typeof res.body.detail).toBe('string');
    expect((await call('GET', '/api/conversations/count')).body).toBe(before);
  });

  it('searches with keyset paging, status filter and every sort order; counts as a bare integer', async () => {
    const tag = randomUUID().slice(0, 8);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await call('POST', '/api/conversations', startRequest({ tags: { run: tag.replace(/-/g, '') } }))).body.id);
    const total = (await call('GET', '/api/conversations/count')).body;
    expect(typeof total).toBe('number');
    expect(total).toBeGreaterThanOrEqual(5);

    const seen: string[] = [];
    let page = await call('GET', '/api/conversations/search?limit=2');
    expect(ConversationPageSchema.safeParse(page.body).success).toBe(true);
    for (;;) {
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((c: any) => c.id));
      if (!page.body.next_page_id) break;
      expect(page.body.next_page_id).toMatch(/^[0-9a-f]{32}$/);
      page = await call('GET', `/api/conversations/search?limit=2&page_id=${page.body.next_page_id}`);
    }
    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
    // Newest first by default.
    expect(seen.indexOf(ids[4])).toBeLessThan(seen.indexOf(ids[0]));

    const asc = await call('GET', '/api/conversations/search?sort_order=CREATED_AT&limit=100');
    const ascIds = asc.body.items.map((c: any) => c.id);
    expect(ascIds.indexOf(ids[0])).toBeLessThan(ascIds.indexOf(ids[4]));

    await call('PATCH', `/api/conversations/${ids[1]}`, { title: 'touched' });
    const byUpdate = await call('GET', '/api/conversations/search?sort_order=UPDATED_AT_DESC&limit=1');
    expect(byUpdate.body.items[0].id).toBe(ids[1]);
    expect((await call('GET', '/api/conversations/search?sort_order=UPDATED_AT&limit=100')).status).toBe(200);

    await call('POST', `/api/conversations/${ids[2]}/run`);
    const running = await call('GET', '/api/conversations/search?status=running&limit=100');
    expect(running.body.items.every((c: any) => c.execution_status === 'running')).toBe(true);
    expect(running.body.items.map((c: any) => c.id)).toContain(ids[2]);
    expect((await call('GET', '/api/conversations/count?status=running')).body).toBe(running.body.items.length);

    for (const bad of ['limit=0', 'limit=101', 'limit=abc', 'status=bogus', 'sort_order=SIDEWAYS']) {
      const res = await call('GET', `/api/conversations/search?${bad}`);
      expect(res.status).toBe(422);
    }
  });

  it('gets a batch in input order with null for unknown ids', async () => {
    const a = (await call('POST', '/api/conversations', startRequest())).body.id;
    const b = (await call('POST', '/api/conversations', startRequest())).body.id;
    const unknown = randomUUID();
    const res = await call('GET', `/api/conversations?ids=${b}&ids=${unknown}&ids=${a}`);
    expect(res.status).toBe(200);
    expect(res.body.map((c: any) => c?.id ?? null)).toEqual([b, null, a]);
    expect((await call('GET', '/api/conversations?ids=not-a-uuid')).status).toBe(422);
    expect((await call('GET', '/api/conversations')).status).toBe(422);
    const tooMany = Array.from({ length: 101 }, () => `ids=${randomUUID()}`).join('&');
    expect((await call('GET', `/api/conversations?${tooMany}`)).status).toBe(422);
  });

  it('titles a conversation from its first user message in the background (autotitle), unless told not to; an LLM that fails leaves the message itself, shortened', async () => {
    // This agent's LLM does not answer (and is not retried): the title falls back to the message, as OpenHands'.
    const unreachable = { ...AGENT, llm: { ...AGENT.llm, num_retries: 0 } };
    const titleOf = async (id: string) => (await call('GET', `/api/conversations/${id}`)).body.title as string | null;
    const titled = await call('POST', '/api/conversations', startRequest({ agent: unreachable, initial_message: userMessage('  Fix the flaky login test  ') }));
    expect(titled.body.title).toBeNull();
    await until(async () => (await titleOf(titled.body.id)) !== null, 'the fallback title');
    expect(await titleOf(titled.body.id)).toBe('Fix the flaky login test');
    const untitled = await call('POST', '/api/conversations', startRequest({ agent: unreachable, autotitle: false, initial_message: userMessage('no title please') }));
    const later = (await call('POST', '/api/conversations', startRequest({ agent: unreachable }))).body.id;
    await call('POST', `/api/conversations/${later}/events`, userMessage('x'.repeat(80)));
    await until(async () => (await titleOf(later)) !== null, 'the fallback title');
    const title = await titleOf(later);
    expect(title).toBe(`${'x'.repeat(47)}...`);
    await call('POST', `/api/conversations/${later}/events`, userMessage('a second message'));
    await new Promise((r) => setTimeout(r, 300));
    expect(await titleOf(later)).toBe(title);
    expect(await titleOf(untitled.body.id)).toBeNull();
  });

  it('updates title and tags, validates them, and deletes', async () => {
    const id = (await call('POST', '/api/conversations', startRequest({ tags: { a: '1' } }))).body.id;
    expect((await call('PATCH', `/api/conversations/${id}`, { title: '  My title  ', tags: { b: '2' } })).body).toEqual({ success: true });
    const info = (await call('GET', `/api/conversations/${id}`)).body;
    expect(info.title).toBe('My title');
    expect(info.tags).toEqual({ b: '2' });
    expect((await call('PATCH', `/api/conversations/${id}`, { title: '' })).status).toBe(422);
    expect((await call('PATCH', `/api/conversations/${id}`, { title: 'x'.repeat(201) })).status).toBe(422);
    expect((await call('PATCH', `/api/conversations/${randomUUID()}`, { title: 'x' })).status).toBe(404);

    expect((await call('DELETE', `/api/conversations/${id}`)).body).toEqual({ success: true });
    expect((await call('GET', `/api/conversations/${id}`)).status).toBe(404);
    const gone = await call('DELETE', `/api/conversations/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.detail).toContain(id);
  });

  it('runs, refuses a second run with 409, pauses and interrupts with the right transitions', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    expect((await call('POST', `/api/conversations/${id}/run`)).body).toEqual({ success: true });
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('running');
    const again = await call('POST', `/api/conversations/${id}/run`);
    expect(again.status).toBe(409);
    expect(again.body.detail).toBe('Conversation already running. Wait for completion or pause first.');

    expect((await call('POST', `/api/conversations/${id}/interrupt`)).body).toEqual({ success: true });
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('paused');
    // Pausing a paused conversation changes nothing and emits nothing.
    const before = (await call('GET', `/api/conversations/${id}/events/count`)).body;
    expect((await call('POST', `/api/conversations/${id}/pause`)).status).toBe(200);
    expect((await call('GET', `/api/conversations/${id}/events/count`)).body).toBe(before);

    expect((await call('POST', `/api/conversations/${id}/run`)).status).toBe(200);
    expect((await call('POST', `/api/conversations/${id}/pause`)).status).toBe(200);
    const kinds = (await call('GET', `/api/conversations/${id}/events/search`)).body.items.map((e: any) => e.kind + (e.key ? `:${e.value}` : ''));
    expect(kinds).toEqual([
      'ConversationStateUpdateEvent:running',
      'ConversationStateUpdateEvent:paused',
      'InterruptEvent',
      'ConversationStateUpdateEvent:running',
      'ConversationStateUpdateEvent:paused',
      'PauseEvent',
    ]);
    const unknown = randomUUID();
    expect((await call('POST', `/api/conversations/${unknown}/run`)).status).toBe(404);
    expect((await call('POST', `/api/conversations/${unknown}/pause`)).status).toBe(404);
    expect((await call('POST', `/api/conversations/${unknown}/interrupt`)).status).toBe(404);
  });

  it('sets secrets and the confirmation policy, and reads the final response', async () => {
    const id = (await call('POST', '/api/conversations', startRequest())).body.id;
    const secrets = await call('POST', `/api/conversations/${id}/secrets`, {
      secrets: { A: 'plain', B: { value: 'v', description: 'bee' }, C: { kind: 'LookupSecret', url: 'https://vault.example/c', headers: { Authorization: 'Bearer t' } } },
    });
    expect(secrets.body).toEqual({ success: true });
    const info = (await call('GET', `/api/conversations/${id}`)).body;
    expect(Object.keys(info.secret_registry.secret_sources).sort()).toEqual(['A', 'B', 'C']);
    expect(info.secret_registry.secret_sources.B).toEqual({ description: 'bee', value: null, kind: 'StaticSecret' });
    expect(info.secret_registry.secret_sources.C.headers).toEqual({ Authorization: null });
    expect(JSON.stringify(info)).not.toMatch(/plain|Bearer t/);
    expect((await call('POST', `/api/conversations/${id}/secrets`, { secrets: { A: 5 } })).status).toBe(422);

    const policy = await call('POST', `/api/conversations/${id}/confirmation_policy`, { policy: { kind: 'ConfirmRisky' } });
    expect(policy.body).toEqual({ success: true });
    expect((await call('GET', `/api/conversations/${id}`)).body.confirmation_policy).toEqual({ kind: 'ConfirmRisky', threshold: 'HIGH', confirm_unknown: true });
    expect((await call('POST', `/api/conversations/${id}/confirmation_policy`, { policy: { kind: 'Sometimes' } })).status).toBe(422);

    expect((await call('GET', `/api/conversations/${id}/agent_final_response`)).body).toEqual({ response: '' });
    expect((await call('GET', `/api/conversations/${randomUUID()}/agent_final_response`)).status).toBe(404);
  });
});
