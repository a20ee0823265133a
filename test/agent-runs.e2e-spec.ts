import { ConversationInfoSchema } from '@berth/contracts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmStub } from '@berth/testing';
import { api, SocketClient, startServer, STORAGES, storedEvents, TestServer, userMessage, waitForStatus } from './support/server';

const KEY = 'runs-test-key';
const LLM_KEY = 'sk-stub-secret';

describe.each(STORAGES)('agent runs (%s)', (storage) => {
  const llm = new LlmStub();
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });

  beforeAll(async () => {
    await llm.start();
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', BERTH_RUN_STALL_MS: '2000' });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
  });

  const agent = (extra: Record<string, unknown> = {}) => ({
    kind: 'Agent',
    llm: { model: 'openai/stub-model', api_key: LLM_KEY, base_url: llm.url, num_retries: 0, ...extra },
    tools: [{ name: 'terminal' }, { name: 'file_editor' }, { name: 'task_tracker' }],
  });
  const start = async (text: string, extra: Record<string, unknown> = {}) => {
    const res = await call('POST', '/api/conversations', {
      agent: agent(),
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: userMessage(text),
      // No LLM-written title: its call's stats update would land wherever it ends (conversation-ops tests titles).
      autotitle: false,
      ...extra,
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const events = (id: string) => storedEvents(server, KEY, id);
  const waitStatus = (id: string, statuses: string[], timeoutMs = 30_000) => waitForStatus(server, KEY, id, statuses, timeoutMs);

  it('runs a terminal command in the sandbox, finishes, and streams it all on the socket', async () => {
    const text = `echo task ${storage}`;
    llm.script(text, [
      { text: 'Let me run it.', toolCalls: [{ name: 'terminal', arguments: { command: 'echo hello-from-$((40+2)) && pwd' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'Printed hello-from-42.' } }] },
    ]);
    const id = await start(text);
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}&resend_mode=all`);
    const info = await waitStatus(id, ['finished', 'error']);
    expect(info.execution_status).toBe('finished');
    expect(ConversationInfoSchema.safeParse(info).success).toBe(true);

    const log = await events(id);
    const kinds = log.map((e) => e.kind);
    expect(kinds.slice(0, 2)).toEqual(['SystemPromptEvent', 'MessageEvent']);
    const action = log.find((e) => e.kind === 'ActionEvent' && e.tool_name === 'terminal');
    expect(action).toMatchObject({ source: 'agent', action: { command: 'echo hello-from-$((40+2)) && pwd', kind: 'TerminalAction' } });
    expect(action.thought[0].text).toBe('Let me run it.');
    // Stored without nulls, as the SDK stores events: no timeout when the LLM gave none.
    expect(action.action).not.toHaveProperty('timeout');
    const observation = log.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
    expect(observation.action_id).toBe(action.id);
    expect(observation.extended_content).toEqual([]);
    const tools = log[0].tools as any[];
    expect(tools.find((t) => t.kind === 'TerminalTool')).toMatchObject({ title: 'terminal', annotations: { title: 'terminal' } });
    for (const tool of tools) {
      expect(tool).not.toHaveProperty('meta');
      expect(Object.values(tool.annotations)).not.toContain(null);
    }
    expect(observation.observation.kind).toBe('TerminalObservation');
    expect(observation.observation.exit_code).toBe(0);
    const output = observation.observation.content.map((c: any) => c.text).join('');
    expect(output).toContain('hello-from-42');
    // The command ran inside this conversation's sandbox folder.
    expect(output).toContain(join(server.dataDir, 'sandboxes'));
    expect(log.filter((e) => e.key === 'execution_status').map((e) => e.value)).toEqual(['running', 'finished']);
    expect(log.some((e) => e.key === 'stats')).toBe(true);
    // Both calls counted, as OpenHands' Metrics count them: totals and one entry per call in each list.
    const metrics = info.stats.usage_to_metrics.default;
    expect(metrics.accumulated_token_usage).toMatchObject({ prompt_tokens: 200, completion_tokens: 40, per_turn_token: 120 });
    expect(metrics.token_usages.map((t: any) => t.prompt_tokens)).toEqual([100, 100]);
    expect(metrics.costs).toHaveLength(2);
    expect(metrics.response_latencies.map((l: any) => l.response_id)).toEqual(metrics.token_usages.map((t: any) => t.response_id));
    // The state updates carry the totals only (the per-call lists grow with the conversation).
    const lastStats = log.filter((e) => e.key === 'stats').at(-1).value.usage_to_metrics.default;
    expect(lastStats.accumulated_token_usage.prompt_tokens).toBe(200);
    expect(lastStats).not.toHaveProperty('token_usages');
    expect(info.sandbox_id).toBeTruthy();
    expect((await call('GET', `/api/conversations/${id}/agent_final_response`)).body).toEqual({ response: 'Printed hello-from-42.' });

    // The LLM was called as an OpenAI-compatible endpoint: provider prefix dropped, key as bearer token, tools listed.
    const requests = llm.requestsFor(text);
    expect(requests.length).toBe(2);
    expect(requests[0].body.model).toBe('stub-model');
    expect(requests[0].headers.authorization).toBe(`Bearer ${LLM_KEY}`);
    expect(requests[0].body.tools!.map((t) => t.function.name).sort()).toEqual(['file_editor', 'finish', 'task_tracker', 'terminal', 'think']);
    const second = requests[1].body.messages;
    expect(second.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(String(second[3].content)).toContain('hello-from-42');

    const frames = await ws.waitFor((f) => f.some((e) => e.key === 'full_state' && e.value.execution_status === 'finished'), 10_000, 'final full_state');
    const streamed = frames.filter((e) => e.kind !== 'ConversationStateUpdateEvent' || e.key !== 'full_state').map((e) => e.id);
    expect(streamed).toEqual(log.map((e) => e.id));
    ws.close();
    // The key never leaves the worker.
    expect(JSON.stringify(log)).not.toContain(LLM_KEY);
  });

  /** Event kinds as OpenHands 1.58.2 emits them (state updates by key, execution_status with its value). */
  const kindsOf = (log: any[]) =>
    log.map((e) =>
      e.kind === 'ConversationStateUpdateEvent' ? `state:${e.key}${e.key === 'execution_status' ? `=${e.value}` : ''}` : `${e.kind}/${e.source}`,
    );

  it("emits a run's events in OpenHands' order: created with a message, a second turn, a message with run:true", async () => {
    // The orders below are what `python -m openhands.agent_server` 1.58.2 emits for the same scripts.
    // (Its stats update is sent from a callback thread and may land after the action's observation; Berth's comes with the reply.)
    const text = `order a ${storage}`;
    llm.script(text, [{ text: 'Hello there' }, { text: 'Second answer' }]);
    const a = await start(text);
    await waitStatus(a, ['finished']);
    expect(kindsOf(await events(a))).toEqual([
      'SystemPromptEvent/agent',
      'MessageEvent/user',
      'state:last_user_message_id',
      'state:execution_status=running',
      'state:stats',
      'MessageEvent/agent',
      'state:execution_status=finished',
    ]);

    const second = new SocketClient(`${server.wsUrl}/sockets/events/${a}?session_api_key=${KEY}`);
    await second.waitFor((f) => f.some((e) => e.key === 'full_state'));
    const before = (await events(a)).length;
    second.frames.length = 0;
    expect((await call('POST', `/api/conversations/${a}/events`, userMessage('again', true))).body).toEqual({ success: true });
    const secondTurn = [
      'state:execution_status=idle',
      'MessageEvent/user',
      'state:last_user_message_id',
      'state:execution_status=running',
      'state:stats',
      'MessageEvent/agent',
      'state:execution_status=finished',
    ];
    await second.waitFor((f) => f.some((e) => e.key === 'full_state' && e.value.execution_status === 'finished'), 10_000, 'final full_state');
    expect(kindsOf((await events(a)).slice(before))).toEqual(secondTurn);
    expect(kindsOf(second.frames)).toEqual([...secondTurn, 'state:full_state']);
    second.close();

    const textB = `order b ${storage}`;
    llm.script(textB, [{ toolCalls: [{ name: 'terminal', arguments: { command: 'echo hi' } }] }, { text: 'done' }]);
    const b = (await call('POST', '/api/conversations', { agent: agent(), workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' }, autotitle: false })).body.id;
    expect(await events(b)).toEqual([]);
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${b}?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.some((e) => e.key === 'full_state'));
    ws.frames.length = 0;
    await call('POST', `/api/conversations/${b}/events`, userMessage(textB, true));
    await ws.waitFor((f) => f.some((e) => e.key === 'full_state' && e.value.execution_status === 'finished'), 10_000, 'final full_state');
    const runB = [
      'SystemPromptEvent/agent',
      'MessageEvent/user',
      'state:last_user_message_id',
      'state:execution_status=running',
      'state:stats',
      'ActionEvent/agent',
      'ObservationEvent/environment',
      'state:stats',
      'MessageEvent/agent',
      'state:execution_status=finished',
    ];
    expect(kindsOf(await events(b))).toEqual(runB);
    expect(kindsOf(ws.frames)).toEqual([...runB, 'state:full_state']);
    ws.close();
  });

  it('takes a message with run:true on a running conversation (200, the run reads it) and answers 409 to …/run, as OpenHands', async () => {
    const text = `busy ${storage}`;
    llm.script(text, (request, turn) => {
      if (request.body.messages.some((m) => m.role === 'user' && m.content === 'while you work')) return { text: 'Read it while working.' };
      return { delayMs: 700, toolCalls: [{ name: 'think', arguments: { thought: `working ${turn}` } }] };
    });
    const id = await start(text);
    const deadline = Date.now() + 10_000;
    while (llm.requestsFor(text).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('running');
    const sent = await call('POST', `/api/conversations/${id}/events`, userMessage('while you work', true));
    expect(sent.status).toBe(200);
    expect(sent.body).toEqual({ success: true });
    const run = await call('POST', `/api/conversations/${id}/run`);
    expect(run.status).toBe(409);
    expect(run.body).toEqual({ detail: 'Conversation already running. Wait for completion or pause first.' });
    await waitStatus(id, ['finished']);
    const last = (await events(id)).filter((e) => e.kind === 'MessageEvent' && e.source === 'agent').pop();
    expect(last.llm_message.content[0].text).toBe('Read it while working.');
    // One run read it: no second SystemPromptEvent, one user message more.
    const kinds = (await events(id)).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'SystemPromptEvent')).toHaveLength(1);
    expect((await events(id)).filter((e) => e.kind === 'MessageEvent' && e.source === 'user')).toHaveLength(2);
  });

  it('edits files with file_editor and continues the conversation on a follow-up message', async () => {
    const text = `write a file ${storage}`;
    let path = '';
    llm.script(text, (request, turn) => {
      if (turn === 0) {
        const system = String(request.body.messages[0].content);
        const dir = /Your working directory is (\S+)\./.exec(system)![1];
        path = `${dir}/notes.txt`;
        return { toolCalls: [{ name: 'file_editor', arguments: { command: 'create', path, file_text: 'alpha\nbeta\n' } }] };
      }
      if (turn === 1) return { toolCalls: [{ name: 'file_editor', arguments: { command: 'str_replace', path, old_str: 'beta', new_str: 'gamma' } }] };
      if (turn === 2) return { text: 'Created and edited notes.txt.' };
      return { text: `You said: ${JSON.stringify(request.body.messages.at(-1)?.content)}` };
    });
    const id = await start(text);
    await waitStatus(id, ['finished']);
    expect(readFileSync(path, 'utf8')).toBe('alpha\ngamma\n');
    expect(path.startsWith(join(server.dataDir, 'sandboxes'))).toBe(true);
    const log = await events(id);
    const agentMessage = log.filter((e) => e.kind === 'MessageEvent' && e.source === 'agent').pop();
    expect(agentMessage.llm_message.content[0].text).toBe('Created and edited notes.txt.');

    await call('POST', `/api/conversations/${id}/events`, userMessage('and now?', true));
    await waitStatus(id, ['finished']);
    const again = llm.requestsFor(text).at(-1)!.body.messages;
    expect(again.filter((m) => m.role === 'tool').length).toBe(2);
    expect(again.at(-1)).toMatchObject({ role: 'user', content: 'and now?' });
    const last = (await events(id)).filter((e) => e.kind === 'MessageEvent' && e.source === 'agent').pop();
    expect(last.llm_message.content[0].text).toBe('You said: "and now?"');
  });

  it('answers a message sent while the run was finishing instead of dropping it', async () => {
    const text = `late message ${storage}`;
    llm.script(text, [
      { delayMs: 800, toolCalls: [{ name: 'finish', arguments: { message: 'first done' } }] },
      { text: 'Answering the late message.' },
    ]);
    const id = await start(text);
    const deadline = Date.now() + 10_000;
    while (llm.requestsFor(text).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // The client sends, then asks to run: 409 while the run is going — the run must still read it.
    await call('POST', `/api/conversations/${id}/events`, userMessage('one more thing'));
    expect((await call('POST', `/api/conversations/${id}/run`)).status).toBe(409);
    await waitStatus(id, ['finished']);
    await new Promise((r) => setTimeout(r, 300));
    const info = await waitStatus(id, ['finished']);
    expect(info.execution_status).toBe('finished');
    const requests = llm.requestsFor(text);
    expect(requests.length).toBe(2);
    expect(requests[1].body.messages.some((m) => m.role === 'user' && m.content === 'one more thing')).toBe(true);
    const last = (await events(id)).filter((e) => e.kind === 'MessageEvent' && e.source === 'agent').pop();
    expect(last.llm_message.content[0].text).toBe('Answering the late message.');
  });

  it('pauses between steps', async () => {
    const text = `pause me ${storage}`;
    llm.script(text, () => ({ delayMs: 300, toolCalls: [{ name: 'think', arguments: { thought: 'hmm' } }] }));
    const id = await start(text);
    const deadline = Date.now() + 10_000;
    while (!(await events(id)).some((e) => e.kind === 'ActionEvent') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect((await call('POST', `/api/conversations/${id}/pause`)).status).toBe(200);
    await waitStatus(id, ['paused']);
    await new Promise((r) => setTimeout(r, 1000));
    const calls = llm.requestsFor(text).length;
    await new Promise((r) => setTimeout(r, 800));
    expect(llm.requestsFor(text).length).toBe(calls);
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('paused');
    const kinds = (await events(id)).map((e) => e.kind);
    expect(kinds).toContain('PauseEvent');
  });

  it('interrupts a slow LLM answer at once', async () => {
    const text = `slow ${storage}`;
    llm.script(text, [{ delayMs: 20_000, text: 'too late' }]);
    const id = await start(text);
    const deadline = Date.now() + 10_000;
    while (llm.requestsFor(text).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
    await ws.waitFor((f) => f.length >= 1);
    const t0 = Date.now();
    await call('POST', `/api/conversations/${id}/interrupt`);
    await waitStatus(id, ['paused']);
    await ws.waitFor((f) => f.some((e) => e.kind === 'InterruptEvent'));
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 500));
    const log = await events(id);
    expect(log.some((e) => e.kind === 'MessageEvent' && e.source === 'agent')).toBe(false);
    expect((await call('GET', `/api/conversations/${id}`)).body.execution_status).toBe('paused');
    ws.close();
  });

  it('stops with MaxIterationsReached after max_iterations steps', async () => {
    const text = `loop forever ${storage}`;
    llm.script(text, (_r, turn) => ({ toolCalls: [{ name: 'think', arguments: { thought: `step ${turn}` } }] }));
    const id = await start(text, { max_iterations: 3 });
    const info = await waitStatus(id, ['error', 'finished']);
    expect(info.execution_status).toBe('error');
    const error = (await events(id)).find((e) => e.kind === 'ConversationErrorEvent');
    expect(error).toMatchObject({ code: 'MaxIterationsReached', source: 'environment' });
    expect(llm.requestsFor(text).length).toBe(3);
  });

  it('stops a run that repeats itself as stuck', async () => {
    const text = `stuck ${storage}`;
    llm.script(text, () => ({ toolCalls: [{ name: 'terminal', arguments: { command: 'echo same' } }] }));
    const id = await start(text);
    expect((await waitStatus(id, ['stuck', 'error', 'finished'])).execution_status).toBe('stuck');
    expect(llm.requestsFor(text).length).toBe(4);
  });

  it('reports an LLM authentication failure as a ConversationErrorEvent', async () => {
    const text = `bad key ${storage}`;
    llm.script(text, [{ status: 401, errorCode: 'invalid_api_key' }]);
    const id = await start(text);
    expect((await waitStatus(id, ['error'])).execution_status).toBe('error');
    const error = (await events(id)).find((e) => e.kind === 'ConversationErrorEvent');
    expect(error).toMatchObject({ code: 'LLMAuthenticationError', classification: { kind: 'auth', retryable: false, user_action: 'settings' } });
    expect(JSON.stringify(error)).not.toContain(LLM_KEY);
  });

  it('answers bad tool arguments with an AgentErrorEvent and goes on', async () => {
    const text = `bad args ${storage}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: '{"command": ' }] },
      { toolCalls: [{ name: 'no_such_tool', arguments: {} }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'ok' } }] },
    ]);
    const id = await start(text);
    await waitStatus(id, ['finished']);
    const errors = (await events(id)).filter((e) => e.kind === 'AgentErrorEvent');
    expect(errors.length).toBe(2);
    expect(errors[0].error).toMatch(/JSON/);
    expect(errors[1].error).toMatch(/no_such_tool/);
    // The LLM saw both errors as tool results.
    expect(llm.requestsFor(text)[2].body.messages.filter((m) => m.role === 'tool').length).toBe(2);
  });

  it('offers client tools to the LLM, emits their ActionEvent for the client and acknowledges at once', async () => {
    const text = `client tool ${storage}`;
    llm.script(text, [
      { toolCalls: [{ name: 'canvas_ui_control', arguments: { panel: 'files' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'shown' } }] },
    ]);
    const parameters = { type: 'object', properties: { panel: { type: 'string' } }, required: ['panel'] };
    const id = await start(text, { client_tools: [{ name: 'canvas_ui_control', description: 'Show a panel of the UI', parameters }] });
    await waitStatus(id, ['finished']);
    const offered = llm.requestsFor(text)[0].body.tools?.find((t) => t.function.name === 'canvas_ui_control');
    expect(offered?.function).toEqual({ name: 'canvas_ui_control', description: 'Show a panel of the UI', parameters });
    const all = await events(id);
    const action = all.find((e) => e.kind === 'ActionEvent' && e.tool_name === 'canvas_ui_control');
    expect(action.action).toEqual({ panel: 'files', kind: 'ClientAction_canvas_ui_control' });
    const ack = all.find((e) => e.kind === 'ObservationEvent' && e.action_id === action.id);
    expect(ack.observation).toMatchObject({ kind: 'ClientObservation', is_error: false });
    // The acknowledgement went back to the LLM as the tool's result.
    const toolReply = llm.requestsFor(text)[1].body.messages.find((m) => m.role === 'tool');
    expect(JSON.stringify(toolReply?.content)).toContain('canvas_ui_control');
  });

  it('waits for confirmation with AlwaysConfirm, then runs the accepted action', async () => {
    const text = `confirm ${storage}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo confirmed-run' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
    ]);
    const id = await start(text, { confirmation_policy: { kind: 'AlwaysConfirm' } });
    await waitStatus(id, ['waiting_for_confirmation']);
    expect((await events(id)).some((e) => e.kind === 'ObservationEvent')).toBe(false);
    await call('POST', `/api/conversations/${id}/events/respond_to_confirmation`, { accept: true });
    await waitStatus(id, ['finished']);
    const observation = (await events(id)).find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
    expect(observation.observation.content[0].text).toContain('confirmed-run');
  });

  it('streams when the LLM config asks for it', async () => {
    const text = `stream ${storage}`;
    llm.script(text, [{ text: 'Streamed answer in several pieces.' }]);
    const res = await call('POST', '/api/conversations', {
      agent: { ...agent({ stream: true }) },
      workspace: { working_dir: '/workspace/project' },
      initial_message: userMessage(text),
    });
    const id = res.body.id;
    await waitStatus(id, ['finished']);
    expect(llm.requestsFor(text)[0].body.stream).toBe(true);
    const answer = (await events(id)).find((e) => e.kind === 'MessageEvent' && e.source === 'agent');
    expect(answer.llm_message.content[0].text).toBe('Streamed answer in several pieces.');
    expect(existsSync(join(server.dataDir, 'sandboxes'))).toBe(true);
  });
});
