import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { isTitleRequest, LlmStub, STUB_TITLE, StubRequest, until } from '@berth/testing';
import { Database } from '@berth/persistence';
import { api, createTenant, STORAGES, TestServer, startServer, userMessage } from './support/server';

/**
 * Conversation operations as OpenHands' conversation router has them, against real runs (workers in
 * process, sandboxes through the local driver, the scripted LLM): LLM-written titles, ask_agent,
 * switch_llm / switch_profile and fork (events, info fields, and the sandbox's workspace files).
 */

const KEY = 'convops-test-key';
type Json = Record<string, any>;

const titlePromptOf = (r: StubRequest) => String(r.body.messages[1]?.content);
const terminal = (command: string) => ({ toolCalls: [{ name: 'terminal', arguments: { command } }] });
const finish = (message: string) => ({ toolCalls: [{ name: 'finish', arguments: { message } }] });

describe.each(STORAGES)('conversation operations (%s)', (storage) => {
  const llm = new LlmStub();
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown, key = KEY) => api(server, method, path, { body, key });

  beforeAll(async () => {
    await llm.start();
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all' });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
  });

  const agent = (extra: Json = {}) => ({
    kind: 'Agent',
    llm: { model: 'openai/stub-model', api_key: 'sk-agent-key', base_url: llm.url, num_retries: 0, ...extra },
    tools: [{ name: 'terminal' }],
  });
  const start = async (text: string | null, extra: Json = {}) => {
    const res = await call('POST', '/api/conversations', {
      agent: agent(),
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      ...(text ? { initial_message: userMessage(text) } : {}),
      ...extra,
    });
    expect(res.status).toBe(201);
    return res.body as Json;
  };
  const info = async (id: string) => (await call('GET', `/api/conversations/${id}`)).body as Json;
  const events = async (id: string): Promise<Json[]> => (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items;
  const settled = async (id: string) => {
    await until(async () => ['finished', 'error', 'stuck', 'idle'].includes((await info(id)).execution_status), `conversation ${id} to stop running`, 60_000);
    return info(id);
  };
  const sandboxFolder = (sandboxId: string) => join(server.dataDir, 'sandboxes', sandboxId, 'workspace', 'project');
  const row = (id: string) => server.app.get(Database).prisma.conversation.findUniqueOrThrow({ where: { id } });

  describe('titles', () => {
    it("asks the agent's LLM for a title in the background with OpenHands' prompt, counts the call in the stats", async () => {
      const text = `Please fix the login bug ${randomUUID()}`;
      llm.script(text, [finish('done')]);
      const created = await start(text);
      expect(created.title).toBeNull();
      await until(async () => (await info(created.id)).title !== null, 'the title');
      expect((await info(created.id)).title).toBe(STUB_TITLE);
      const request = llm.requests.find((r) => isTitleRequest(r) && titlePromptOf(r).includes(text))!;
      expect(request.body.model).toBe('stub-model');
      expect(request.headers.authorization).toBe('Bearer sk-agent-key');
      expect(titlePromptOf(request)).toContain(`Generate a title (maximum 50 characters) for a conversation that starts with this message:\n\n${text}.`);
      expect(titlePromptOf(request)).toContain('Choose the emoji from this list:💄 frontend: UI and style files\n- 👔 backend');
      await settled(created.id);
      // The title's call and the agent's one count under the agent's usage id, each with a stats update.
      await until(async () => (await info(created.id)).stats.usage_to_metrics.default.token_usages.length === 2, 'both calls counted');
      const stats = (await events(created.id)).filter((e) => e.kind === 'ConversationStateUpdateEvent' && e.key === 'stats');
      expect(stats.length).toBe(2);
    });

    it('uses title_llm_profile when it loads; an LLM that fails leaves the message, shortened, and a ConversationErrorEvent', async () => {
      const saved = await call('POST', '/api/profiles/titles', { llm: { model: 'openai/title-model', api_key: 'sk-title-key', base_url: llm.url } });
      expect(saved.status).toBeLessThan(300);
      const text = `Name this one ${randomUUID()}`;
      llm.script(text, [finish('done')]);
      const viaProfile = await start(text, { title_llm_profile: 'titles' });
      await until(async () => (await info(viaProfile.id)).title !== null, 'the title');
      const request = llm.requests.find((r) => isTitleRequest(r) && titlePromptOf(r).includes(text))!;
      expect(request.body.model).toBe('title-model');
      expect(request.headers.authorization).toBe('Bearer sk-title-key');

      const long = `Failing title ${'y'.repeat(60)} ${randomUUID()}`;
      llm.script(long, [finish('done')]);
      const failing = await start(null, { agent: agent({ base_url: 'http://127.0.0.1:9/v1' }) });
      expect((await call('POST', `/api/conversations/${failing.id}/events`, userMessage(long))).status).toBe(200);
      await until(async () => (await info(failing.id)).title !== null, 'the fallback title');
      expect((await info(failing.id)).title).toBe(`${long.slice(0, 47)}...`);
      const error = (await events(failing.id)).find((e) => e.kind === 'ConversationErrorEvent');
      expect(error).toMatchObject({ source: 'environment' });
      expect(JSON.stringify(error)).not.toContain('sk-agent-key');
    });
  });

  describe('ask_agent', () => {
    it('answers over the history with the SDK prompt and the tools, writes no event, changes no state', async () => {
      const text = `Count the files ${randomUUID()}`;
      llm.script(text, [terminal('echo seven'), finish('There are seven.'), { text: 'I ran echo seven.' }]);
      const created = await start(text);
      const done = await settled(created.id);
      expect(done.execution_status).toBe('finished');
      const before = await events(created.id);
      const res = await call('POST', `/api/conversations/${created.id}/ask_agent`, { question: 'What did you run?' });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ response: 'I ran echo seven.' });
      const asked = llm.requestsFor(text).at(-1)!;
      const last = asked.body.messages.at(-1)!;
      expect(last.role).toBe('user');
      expect(last.content).toBe(
        '<QUESTION>\nBased on the activity so far answer the following question\n\n## Question\nWhat did you run?\n\n\n<IMPORTANT>\nThis is a question, do not make any tool call and just answer my question.\n</IMPORTANT>\n</QUESTION>',
      );
      expect(asked.body.messages[0].role).toBe('system');
      expect(asked.body.messages.some((m) => m.role === 'tool')).toBe(true);
      expect(asked.body.tools!.map((t) => t.function.name)).toContain('terminal');
      expect(asked.body.stream).toBeFalsy();
      const after = await info(created.id);
      expect(after.execution_status).toBe('finished');
      expect((await events(created.id)).map((e) => e.id)).toEqual(before.map((e) => e.id));
      expect(after.stats.usage_to_metrics['ask-agent-llm'].token_usages.length).toBe(1);
    });

    it('404s an unknown or foreign conversation, 422s a bad body', async () => {
      const created = await start(null);
      const other = await createTenant(server);
      expect((await call('POST', `/api/conversations/${created.id}/ask_agent`, { question: 'hi' }, other.key)).status).toBe(404);
      const unknown = await call('POST', `/api/conversations/${randomUUID()}/ask_agent`, { question: 'hi' });
      expect(unknown.status).toBe(404);
      expect(unknown.body).toEqual({ detail: 'Conversation not found' });
      expect((await call('POST', `/api/conversations/${created.id}/ask_agent`, {})).status).toBe(422);
      expect((await call('POST', `/api/conversations/${created.id}/ask_agent`, { question: 42 })).status).toBe(422);
    });
  });

  describe('switch_llm and switch_profile', () => {
    it('switches the LLM of the next step (key encrypted at rest, never echoed) and says so in a state update', async () => {
      const text = `Switch mid-run ${randomUUID()}`;
      llm.script(text, [terminal('sleep 2; echo slept'), finish('done')]);
      const created = await start(text);
      await until(() => llm.requestsFor(text).length === 1, 'the first step');
      const res = await call('POST', `/api/conversations/${created.id}/switch_llm`, { llm: { model: 'openai/switched-model', api_key: 'sk-switched-key', base_url: llm.url, num_retries: 0 } });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ success: true });
      await settled(created.id);
      const second = llm.requestsFor(text)[1];
      expect(second.body.model).toBe('switched-model');
      expect(second.headers.authorization).toBe('Bearer sk-switched-key');

      const shown = await info(created.id);
      expect(shown.agent.llm).toMatchObject({ model: 'openai/switched-model', api_key: null, usage_id: 'default' });
      const stored = await row(created.id);
      expect(JSON.stringify(stored.agent)).not.toContain('sk-switched-key');
      expect((stored.agent as Json).llm.api_key).toMatch(/^gAAAAA/);
      const update = (await events(created.id)).find((e) => e.kind === 'ConversationStateUpdateEvent' && e.key === 'agent')!;
      expect(update.value.llm).toMatchObject({ model: 'openai/switched-model', api_key: '**********' });
      expect(JSON.stringify(await events(created.id))).not.toContain('sk-switched-key');
      // The mask sent back stands for the stored key.
      expect((await call('POST', `/api/conversations/${created.id}/switch_llm`, { llm: { model: 'openai/again', api_key: '**********' } })).status).toBe(200);
      expect(((await row(created.id)).agent as Json).llm.api_key).toBe((stored.agent as Json).llm.api_key);
      // Other secret fields of an LLM are sealed too.
      expect((await call('POST', `/api/conversations/${created.id}/switch_llm`, { llm: { model: 'openai/again', aws_secret_access_key: 'aws-secret-value' } })).status).toBe(200);
      expect(JSON.stringify((await row(created.id)).agent)).not.toContain('aws-secret-value');
      expect((await info(created.id)).agent.llm.aws_secret_access_key).toBeNull();
      expect(shown.supports_runtime_model_switch).toBe(false);
      expect(shown.available_models).toEqual([]);
    });

    it("switches to one of the tenant's LLM profiles as `profile:<name>`; 404 for another tenant's conversation or an unknown profile; 422 for a bad body", async () => {
      expect((await call('POST', '/api/profiles/fast', { llm: { model: 'openai/fast-model', api_key: 'sk-fast-key', base_url: llm.url } })).status).toBeLessThan(300);
      const created = await start(null);
      expect((await call('POST', `/api/conversations/${created.id}/switch_profile`, { profile_name: 'fast' })).status).toBe(200);
      const shown = await info(created.id);
      expect(shown.agent.llm).toMatchObject({ model: 'openai/fast-model', usage_id: 'profile:fast', api_key: null });
      expect(shown.stats.usage_to_metrics['profile:fast']).toMatchObject({ model_name: 'openai/fast-model', accumulated_cost: 0 });
      const text = `After the profile switch ${randomUUID()}`;
      llm.script(text, [finish('done')]);
      await call('POST', `/api/conversations/${created.id}/events`, userMessage(text, true));
      await until(() => llm.requestsFor(text).length > 0, 'a step');
      expect(llm.requestsFor(text)[0].headers.authorization).toBe('Bearer sk-fast-key');

      const missing = await call('POST', `/api/conversations/${created.id}/switch_profile`, { profile_name: 'nope' });
      expect(missing.status).toBe(404);
      expect(missing.body).toEqual({ detail: "Profile 'nope' not found" });
      const other = await createTenant(server);
      expect((await call('POST', `/api/conversations/${created.id}/switch_profile`, { profile_name: 'fast' }, other.key)).status).toBe(404);
      expect((await call('POST', `/api/conversations/${created.id}/switch_llm`, { llm: { model: 'x' } }, other.key)).status).toBe(404);
      expect((await call('POST', `/api/conversations/${created.id}/switch_llm`, { llm: { model: 'x', temperature: 7 } })).status).toBe(422);
      expect((await call('POST', `/api/conversations/${created.id}/switch_llm`, { model: 'x' })).status).toBe(422);
      expect((await call('POST', `/api/conversations/${created.id}/switch_profile`, {})).status).toBe(422);
    });
  });

  describe('fork', () => {
    it("copies the events (same ids) and the workspace's files as they are at the fork; later files stay apart", async () => {
      const text = `Write a file then fork ${randomUUID()}`;
      llm.script(text, [terminal('echo before > before.txt'), finish('written'), terminal('echo after > after.txt'), finish('written again')]);
      const source = await start(text);
      expect((await settled(source.id)).execution_status).toBe('finished');
      const sourceEvents = await events(source.id);

      const res = await call('POST', `/api/conversations/${source.id}/fork`, { title: 'The fork', tags: { team: 'ops' } });
      expect(res.status).toBe(201);
      const fork = res.body as Json;
      expect(fork).toMatchObject({
        execution_status: 'idle',
        title: 'The fork',
        tags: { team: 'ops' },
        forked_from_conversation_id: source.id,
        forked_from_event_id: null,
        workspace_files: 'copied',
      });
      expect(fork.id).not.toBe(source.id);
      expect(fork.sandbox_id).not.toBe((await info(source.id)).sandbox_id);
      expect((await events(fork.id)).map((e) => e.id)).toEqual(sourceEvents.map((e) => e.id));
      // reset_metrics (the default): the fork's stats start empty.
      expect(fork.stats).toEqual({ usage_to_metrics: {} });
      expect(readFileSync(join(sandboxFolder(fork.sandbox_id), 'before.txt'), 'utf8')).toBe('before\n');

      // The source goes on: its new file is not the fork's.
      await call('POST', `/api/conversations/${source.id}/events`, userMessage('and one more', true));
      await until(async () => existsSync(join(sandboxFolder((await info(source.id)).sandbox_id), 'after.txt')), 'the source to write after.txt', 60_000);
      await settled(source.id);
      expect(existsSync(join(sandboxFolder(fork.sandbox_id), 'after.txt'))).toBe(false);
      // The fork runs on its own copy (its executor starts on the copied folder).
      const forkText = `the fork's own turn`;
      llm.script(text, [terminal('cat before.txt; ls'), finish('seen')]);
      await call('POST', `/api/conversations/${fork.id}/events`, userMessage(forkText, true));
      const copied = new Set(sourceEvents.map((e) => e.id));
      const ownCommand = async () => (await events(fork.id)).find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal' && !copied.has(e.id));
      await until(async () => (await info(fork.id)).execution_status === 'finished' && !!(await ownCommand()), 'the fork to run its command', 60_000);
      const observed = (await ownCommand())!;
      const output = (observed.observation.content as Json[]).map((c) => c.text).join('');
      expect(output).toContain('before');
      expect(output).not.toContain('after.txt');
    });

    it('forks up to from_event_id, keeps the stats when reset_metrics is false; 404 unknown source or event, 409 an id in use, 422 a bad body', async () => {
      const text = `Fork me partly ${randomUUID()}`;
      llm.script(text, [finish('done')]);
      const source = await start(text);
      await settled(source.id);
      const sourceEvents = await events(source.id);
      const message = sourceEvents.find((e) => e.kind === 'MessageEvent')!;
      const forkId = randomUUID();
      const res = await call('POST', `/api/conversations/${source.id}/fork`, { id: forkId, from_event_id: message.id, reset_metrics: false });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ id: forkId, forked_from_conversation_id: source.id, forked_from_event_id: message.id, last_user_message_id: null, title: null, tags: {} });
      const forked = await events(forkId);
      expect(forked.map((e) => e.id)).toEqual(sourceEvents.slice(0, sourceEvents.indexOf(message) + 1).map((e) => e.id));
      expect(res.body.stats).toEqual((await info(source.id)).stats);

      // An empty body is the defaults.
      expect((await api(server, 'POST', `/api/conversations/${source.id}/fork`, { key: KEY })).status).toBe(201);
      const taken = await call('POST', `/api/conversations/${source.id}/fork`, { id: forkId });
      expect(taken.status).toBe(409);
      expect(taken.body).toEqual({ detail: `Conversation with id ${forkId} already exists` });
      const unknownEvent = await call('POST', `/api/conversations/${source.id}/fork`, { from_event_id: 'no-such-event' });
      expect(unknownEvent.status).toBe(404);
      expect(unknownEvent.body).toEqual({ detail: 'Unknown from_event_id: no-such-event' });
      const unknown = await call('POST', `/api/conversations/${randomUUID()}/fork`, {});
      expect(unknown.status).toBe(404);
      expect(unknown.body).toEqual({ detail: 'Source conversation not found' });
      const other = await createTenant(server);
      expect((await call('POST', `/api/conversations/${source.id}/fork`, {}, other.key)).status).toBe(404);
      // Another tenant's id is in use too.
      const theirs = await call('POST', '/api/conversations', { agent: agent(), workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' } }, other.key);
      expect(theirs.status).toBe(201);
      expect((await call('POST', `/api/conversations/${source.id}/fork`, { id: theirs.body.id })).status).toBe(409);
      for (const bad of [{ id: 'not-a-uuid' }, { tags: { BAD: 'x' } }, { reset_metrics: 'yes' }, { title: 'x'.repeat(201) }]) {
        expect((await call('POST', `/api/conversations/${source.id}/fork`, bad)).status).toBe(422);
      }
    });

    it('a conversation that never had a sandbox forks with its events only (workspace_files none)', async () => {
      const source = await start(null);
      const res = await call('POST', `/api/conversations/${source.id}/fork`, {});
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ workspace_files: 'none', sandbox_id: null });
    });
  });
});

describe.each(STORAGES)('a title cut short by a shutdown (%s)', (storage) => {
  const llm = new LlmStub();
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-titles-'));
  let server: TestServer | null = null;
  afterAll(async () => {
    await server?.close();
    await llm.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("is written by the next process's start", async () => {
    await llm.start();
    let titleCalls = 0;
    // The first title call hangs past the shutdown; the next one answers.
    llm.fallbackScript((request) => (isTitleRequest(request) ? (++titleCalls === 1 ? { delayMs: 60_000, text: 'too late' } : { text: 'Written after the restart' }) : { status: 500 }));
    const env = { OH_SESSION_API_KEYS_0: KEY };
    server = await startServer(storage, env, dataDir);
    const created = await api(server, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: 'sk-agent-key', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
        initial_message: userMessage(`Title me after a restart ${randomUUID()}`),
      },
    });
    expect(created.status).toBe(201);
    await until(() => titleCalls === 1, 'the first title call');
    await server.close();
    server = await startServer(storage, env, dataDir);
    const titleOf = async () => (await api(server!, 'GET', `/api/conversations/${created.body.id}`, { key: KEY })).body.title;
    await until(async () => (await titleOf()) !== null, 'the title after the restart', 30_000);
    expect(await titleOf()).toBe('Written after the restart');
  });
});
