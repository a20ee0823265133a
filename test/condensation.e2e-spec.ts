import { EventLog } from '@berth/persistence';
import { LlmStub, StubRequest } from '@berth/testing';
import { api, createTenant, startServer, storedEvents, TestServer, userMessage, waitForStatus } from './support/server';

const KEY = 'condense-test-key';

/** Runs with the agent's LLMSummarizingCondenser, POST …/condense, and a long run whose cost per step stays flat. */
describe('condensation (postgres)', () => {
  const llm = new LlmStub();
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown, key = KEY) => api(server, method, path, { body, key });

  beforeAll(async () => {
    await llm.start();
    llm.summaryScript((request) => ({ text: `SUMMARY OF ${(String(request.body.messages[1].content).match(/<EVENT>/g) ?? []).length} EVENTS` }));
    server = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all' });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
  });

  const llmConfig = (usageId: string) => ({ model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0, usage_id: usageId });
  const start = async (text: string, condenser: Record<string, unknown> | null, extra: Record<string, unknown> = {}, key = KEY) => {
    const res = await call(
      'POST',
      '/api/conversations',
      {
        agent: { kind: 'Agent', llm: llmConfig('agent'), tools: [], ...(condenser ? { condenser } : {}) },
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
        initial_message: userMessage(text),
        ...extra,
      },
      key,
    );
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const summarizing = (maxSize: number, keepFirst = 2) => ({ kind: 'LLMSummarizingCondenser', llm: llmConfig('condenser'), max_size: maxSize, keep_first: keepFirst });
  const events = (id: string) => storedEvents(server, KEY, id);
  const waitStatus = (id: string, statuses: string[], timeoutMs = 60_000, pollMs = 50) => waitForStatus(server, KEY, id, statuses, timeoutMs, pollMs);
  const thinkSteps = (steps: number) => (_request: StubRequest, turn: number) =>
    turn < steps ? { toolCalls: [{ name: 'think', arguments: { thought: `step ${turn}` } }] } : { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] };
  const toolCallIds = (request: StubRequest) => request.body.messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id);

  it('condenses a run: the Condensation forgets the middle, the next request holds its summary and not the forgotten events', async () => {
    const text = 'think six times';
    llm.script(text, thinkSteps(6));
    const summariesBefore = llm.summaryRequests().length;
    // No title: its LLM call (the agent's, in the background) would count in the agent's stats at any time.
    const id = await start(text, summarizing(10), { autotitle: false });
    // Both LLMs are listed from the start, as the SDK registers every LLM of the agent.
    expect(Object.keys((await call('GET', `/api/conversations/${id}`)).body.stats.usage_to_metrics).sort()).toEqual(['agent', 'condenser']);
    const info = await waitStatus(id, ['finished', 'error']);
    expect(info.execution_status).toBe('finished');

    const log = await events(id);
    const condensations = log.filter((e) => e.kind === 'Condensation');
    expect(condensations.length).toBeGreaterThanOrEqual(1);
    const first = condensations[0];
    expect(Object.keys(first).sort()).toEqual(['forgotten_event_ids', 'id', 'kind', 'llm_response_id', 'source', 'summary', 'summary_offset', 'timestamp']);
    expect(first).toMatchObject({ source: 'environment', summary_offset: 2 });
    expect(first.summary).toMatch(/^SUMMARY OF \d+ EVENTS$/);
    // The forgotten events are the ones after keep_first (system prompt, user message), on action/observation boundaries.
    const forgotten = log.filter((e) => first.forgotten_event_ids.includes(e.id));
    expect(forgotten.length).toBe(first.forgotten_event_ids.length);
    expect(forgotten.map((e) => e.kind)).toEqual(forgotten.map((_, i) => (i % 2 ? 'ObservationEvent' : 'ActionEvent')));
    expect(llm.summaryRequests().length - summariesBefore).toBe(condensations.length);

    // The agent's request after the condensation: system, user, the summary (as the user), then only what was kept.
    const requests = llm.requestsFor(text);
    const forgottenCalls = new Set(forgotten.filter((e) => e.kind === 'ActionEvent').map((e) => e.tool_call_id));
    const after = requests.find((r) => r.body.messages.some((m) => m.content === first.summary))!;
    expect(after).toBeDefined();
    expect(after.body.messages.slice(0, 3).map((m) => m.role)).toEqual(['system', 'user', 'user']);
    expect(after.body.messages[2].content).toBe(first.summary);
    expect(toolCallIds(after).some((c) => forgottenCalls.has(c!))).toBe(false);
    for (const r of requests) expect(r.body.messages.length).toBeLessThanOrEqual(10 + 2);

    // The condenser's LLM is counted under its own usage id, as the SDK's stats do.
    expect(info.stats.usage_to_metrics.condenser.accumulated_token_usage.prompt_tokens).toBe(100 * condensations.length);
    expect(info.stats.usage_to_metrics.agent.accumulated_token_usage.prompt_tokens).toBe(100 * requests.length);
  });

  it('POST …/condense condenses an idle conversation at once, refuses an agent without a condenser, and hides other tenants', async () => {
    const text = 'think twice then condense';
    llm.script(text, thinkSteps(2));
    const id = await start(text, summarizing(100));
    await waitStatus(id, ['finished']);
    const before = await events(id);
    expect(before.some((e) => e.kind === 'Condensation')).toBe(false);

    const res = await call('POST', `/api/conversations/${id}/condense`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    const after = (await events(id)).slice(before.length);
    expect(after.map((e) => e.kind).slice(0, 2)).toEqual(['CondensationRequest', 'Condensation']);
    expect(Object.keys(after[0]).sort()).toEqual(['id', 'kind', 'source', 'timestamp']);
    // A request halves the view: (view // 2) - keep_first - 1 events stay after the forgotten range.
    expect(after[1].summary_offset).toBe(2);
    expect(after[1].forgotten_event_ids.length).toBeGreaterThan(0);
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('finished');

    const plain = 'no condenser here';
    llm.script(plain, [{ toolCalls: [{ name: 'finish', arguments: { message: 'ok' } }] }]);
    const without = await start(plain, null);
    const refused = await call('POST', `/api/conversations/${without}/condense`);
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({ detail: 'Cannot condense conversation: No condenser configured' });
    const noOp = await start(plain, { kind: 'NoOpCondenser' });
    expect((await call('POST', `/api/conversations/${noOp}/condense`)).body).toEqual({ detail: 'Cannot condense conversation: Condenser NoOpCondenser does not handle condensation requests' });

    const other = await createTenant(server);
    const hidden = await call('POST', `/api/conversations/${id}/condense`, undefined, other.key);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toEqual({ detail: 'Conversation not found' });
  });

  it('a condense request reaches a running loop, which condenses at its next step', async () => {
    const text = 'think slowly, condensed on request';
    let released = false;
    llm.script(text, (request, turn) => {
      if (turn === 2 && !released) return { delayMs: 1500, toolCalls: [{ name: 'think', arguments: { thought: 'slow' } }] };
      return thinkSteps(4)(request, turn);
    });
    const id = await start(text, summarizing(100));
    await waitStatus(id, ['running']);
    await new Promise((r) => setTimeout(r, 300));
    const res = await call('POST', `/api/conversations/${id}/condense`);
    released = true;
    expect(res.status).toBe(200);
    expect((await waitStatus(id, ['finished', 'error'])).execution_status).toBe('finished');
    const kinds = (await events(id)).map((e) => e.kind);
    const requestAt = kinds.indexOf('CondensationRequest');
    expect(requestAt).toBeGreaterThan(0);
    expect(kinds.indexOf('Condensation')).toBeGreaterThan(requestAt);
  });

  it('1,000 scripted steps with the condenser on: finishes, requests stay bounded, the log is read once', async () => {
    const text = 'a thousand thoughts';
    const steps = 1000;
    const maxSize = 40;
    llm.script(text, thinkSteps(steps));
    const log = server.app.get(EventLog);
    // Reads of a whole log (all, range, search), by conversation: only the run's start may make one.
    const reads: [string, string][] = [];
    for (const method of ['all', 'range', 'search'] as const) {
      const original = (log[method] as (...args: unknown[]) => unknown).bind(log);
      jest.spyOn(log, method).mockImplementation(((conversationId: string, ...rest: unknown[]) => {
        reads.push([method, conversationId]);
        return original(conversationId, ...rest);
      }) as never);
    }
    let id = '';
    try {
      id = await start(text, summarizing(maxSize), { max_iterations: 5000 });
      // Polled seldom: the run, not the poll, is what this machine's two cores are for. About 70 s
      // here with another suite running; three minutes when four share the two cores.
      const info = await waitStatus(id, ['finished', 'error', 'stuck'], 280_000, 1000);
      expect(info.execution_status).toBe('finished');
    } finally {
      jest.restoreAllMocks();
    }
    const requests = llm.requestsFor(text);
    expect(requests.length).toBe(steps + 1);
    const longest = Math.max(...requests.map((r) => r.body.messages.length));
    expect(longest).toBeLessThanOrEqual(maxSize + 2);
    expect(reads.filter(([, conversationId]) => conversationId === id).map(([method]) => method)).toEqual(['all']);
    const count = await call('GET', `/api/conversations/${id}/events/count?kind=Condensation`);
    expect(count.body).toBeGreaterThan(steps / maxSize);
  }, 300_000);
});
