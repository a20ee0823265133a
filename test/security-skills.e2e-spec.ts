import { randomUUID } from 'node:crypto';
import { ConversationInfoSchema } from '@berth/contracts';
import { LlmStub } from '@berth/testing';
import { api, createTenant, startServer, TestServer, userMessage, waitForStatus } from './support/server';

/**
 * The security analyzer with confirmation by risk, and skills/agent context, end to end: the
 * scripted LLM's requests show what the agent was offered and told; the event log and
 * ConversationInfo show what Berth made of the answers.
 */

const KEY = 'guard-test-key';
const LLM_KEY = 'sk-stub-guard';
const ANALYZER = { kind: 'LLMSecurityAnalyzer' };

describe('security analyzer and skills (postgres)', () => {
  const llm = new LlmStub();
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown, key = KEY) => api(server, method, path, { body, key });

  beforeAll(async () => {
    await llm.start();
    server = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all' });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
  });

  const agent = (extra: Record<string, unknown> = {}) => ({
    kind: 'Agent',
    llm: { model: 'openai/stub-model', api_key: LLM_KEY, base_url: llm.url, num_retries: 0 },
    tools: [{ name: 'terminal' }],
    ...extra,
  });
  const start = async (text: string, extra: Record<string, unknown> = {}) => {
    const res = await call('POST', '/api/conversations', {
      agent: agent(),
      workspace: { kind: 'LocalWorkspace', working_dir: `/srv/${randomUUID()}` },
      initial_message: userMessage(text),
      ...extra,
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const events = async (id: string) => (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items as any[];
  const waitStatus = (id: string, statuses: string[], timeoutMs = 30_000) => waitForStatus(server, KEY, id, statuses, timeoutMs);
  const toolParams = (request: { body: { tools?: { function: { name: string; parameters: unknown } }[] } }, name: string) =>
    (request.body.tools ?? []).find((t) => t.function.name === name)?.function.parameters as { properties: Record<string, any>; required?: string[] };

  it('offers security_risk on every tool call but the read-only ones, and with an analyzer records the risk the LLM gave', async () => {
    const text = `analyzed ${randomUUID()}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo low-risk', security_risk: 'LOW' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'Done.', security_risk: 'HIGH' } }] },
    ]);
    const id = await start(text, { security_analyzer: ANALYZER });
    expect((await waitStatus(id, ['finished', 'error'])).execution_status).toBe('finished');

    const [first] = llm.requestsFor(text);
    const terminal = toolParams(first, 'terminal');
    expect(Object.keys(terminal.properties).slice(0, 2)).toEqual(['security_risk', 'summary']);
    expect(terminal.properties.security_risk).toMatchObject({ type: 'string', enum: ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH'] });
    expect(terminal.required ?? []).not.toContain('security_risk');
    expect(toolParams(first, 'finish').properties.security_risk).toBeUndefined();

    const log = await events(id);
    const action = log.find((e) => e.kind === 'ActionEvent' && e.tool_name === 'terminal');
    expect(action.security_risk).toBe('LOW');
    // The value never reaches the tool's action.
    expect(action.action).not.toHaveProperty('security_risk');
    expect(log.find((e) => e.kind === 'ObservationEvent' && e.action_id === action.id)).toBeDefined();
    // One analysis per analyzed batch; a lone finish is not analyzed (and read-only: its risk is UNKNOWN).
    const analyses = log.filter((e) => e.kind === 'SecurityAnalysisEvent');
    expect(analyses).toEqual([
      expect.objectContaining({ source: 'environment', analyzer: 'LLMSecurityAnalyzer', policy: 'NeverConfirm', risks: { [action.id]: 'LOW' }, details: {} }),
    ]);
    expect(log.find((e) => e.kind === 'ActionEvent' && e.tool_name === 'finish').security_risk).toBe('UNKNOWN');
  });

  it('without an analyzer the same tools are offered, but the risk the LLM gives is not read', async () => {
    const text = `unanalyzed ${randomUUID()}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo x', security_risk: 'HIGH' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'Done.' } }] },
    ]);
    // ConfirmRisky that would stop a HIGH risk: with no analyzer the risk is UNKNOWN, which it lets through.
    const id = await start(text, { confirmation_policy: { kind: 'ConfirmRisky', threshold: 'HIGH', confirm_unknown: false } });
    expect((await waitStatus(id, ['finished', 'error', 'waiting_for_confirmation'])).execution_status).toBe('finished');
    expect(toolParams(llm.requestsFor(text)[0], 'terminal').properties.security_risk).toBeDefined();
    const log = await events(id);
    expect(log.find((e) => e.kind === 'ActionEvent' && e.tool_name === 'terminal').security_risk).toBe('UNKNOWN');
    expect(log.some((e) => e.kind === 'SecurityAnalysisEvent')).toBe(false);
  });

  it('ConfirmRisky runs a LOW risk call and waits for confirmation of a HIGH one', async () => {
    const text = `risky ${randomUUID()}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo safe', security_risk: 'LOW' } }] },
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo dangerous-$((6*7))', security_risk: 'HIGH' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'Done.' } }] },
    ]);
    const id = await start(text, { security_analyzer: ANALYZER, confirmation_policy: { kind: 'ConfirmRisky', threshold: 'HIGH', confirm_unknown: true } });
    const waiting = await waitStatus(id, ['waiting_for_confirmation', 'finished', 'error']);
    expect(waiting.execution_status).toBe('waiting_for_confirmation');
    let log = await events(id);
    const [low, high] = log.filter((e) => e.kind === 'ActionEvent');
    expect([low.security_risk, high.security_risk]).toEqual(['LOW', 'HIGH']);
    expect(log.some((e) => e.kind === 'ObservationEvent' && e.action_id === low.id)).toBe(true);
    expect(log.some((e) => e.kind === 'ObservationEvent' && e.action_id === high.id)).toBe(false);
    expect(log.filter((e) => e.kind === 'SecurityAnalysisEvent').map((e) => e.policy)).toEqual(['ConfirmRisky', 'ConfirmRisky']);
    // Two LLM calls so far: the run stopped before asking again.
    expect(llm.requestsFor(text)).toHaveLength(2);

    expect((await call('POST', `/api/conversations/${id}/events/respond_to_confirmation`, { accept: true })).status).toBe(200);
    expect((await waitStatus(id, ['finished', 'error'])).execution_status).toBe('finished');
    log = await events(id);
    const ran = log.find((e) => e.kind === 'ObservationEvent' && e.action_id === high.id);
    expect(JSON.stringify(ran.observation.content)).toContain('dangerous-42');
  });

  it('a risk that is not a SecurityRisk makes the call an error the agent reads, as the SDK words it', async () => {
    const text = `bogus risk ${randomUUID()}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo x', security_risk: 'SEVERE' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'Done.' } }] },
    ]);
    const id = await start(text, { security_analyzer: ANALYZER });
    await waitStatus(id, ['finished', 'error']);
    const error = (await events(id)).find((e) => e.kind === 'AgentErrorEvent');
    expect(error.error).toBe("Error validating tool 'terminal': 'SEVERE' is not a valid SecurityRisk. Parameters provided: ['command']");
    const second = llm.requestsFor(text)[1].body.messages.at(-1)!;
    expect(second).toMatchObject({ role: 'tool' });
    expect(String(second.content)).toContain('is not a valid SecurityRisk');
  });

  it('POST …/security_analyzer sets or clears the analyzer, validated, for the caller\'s conversations only', async () => {
    const created = await call('POST', '/api/conversations', { agent: agent(), workspace: { kind: 'LocalWorkspace', working_dir: `/srv/${randomUUID()}` } });
    const id = created.body.id;
    expect(created.body.security_analyzer).toBeNull();
    expect((await call('POST', `/api/conversations/${id}/security_analyzer`, { security_analyzer: ANALYZER })).body).toEqual({ success: true });
    expect((await call('GET', `/api/conversations/${id}`)).body.security_analyzer).toEqual(ANALYZER);
    const update = (await events(id)).find((e) => e.kind === 'ConversationStateUpdateEvent' && e.key === 'security_analyzer');
    expect(update.value).toEqual(ANALYZER);
    expect((await call('POST', `/api/conversations/${id}/security_analyzer`, { security_analyzer: null })).status).toBe(200);
    expect((await call('GET', `/api/conversations/${id}`)).body.security_analyzer).toBeNull();

    const refused = await call('POST', `/api/conversations/${id}/security_analyzer`, { security_analyzer: { kind: 'GraySwanAnalyzer' } });
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.body.detail)).toContain('LLMSecurityAnalyzer');
    expect((await call('POST', `/api/conversations/${id}/security_analyzer`, {})).status).toBe(422);
    const other = await createTenant(server);
    expect((await call('POST', `/api/conversations/${id}/security_analyzer`, { security_analyzer: ANALYZER }, other.key)).status).toBe(404);
    expect((await call('POST', `/api/conversations/${randomUUID()}/security_analyzer`, { security_analyzer: ANALYZER })).status).toBe(404);
  });

  it("puts the working dir's AGENTS.md in the system prompt and a triggered knowledge skill in the user message, once", async () => {
    const workingDir = `/srv/${randomUUID()}`;
    const deploy = { name: 'deploy', content: 'Deploy with `make ship`.', trigger: { type: 'keyword', keywords: ['deploy'] } };
    const created = await call('POST', '/api/conversations', {
      agent: agent({ agent_context: { load_project_skills: true, skills: [deploy], user_message_suffix: 'Answer briefly.' } }),
      workspace: { kind: 'LocalWorkspace', working_dir: workingDir },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const upload = async (path: string, content: string) => {
      const form = new FormData();
      form.append('file', new Blob([Buffer.from(content)]), 'f');
      const res = await fetch(`${server.url}/api/conversations/${id}/file/upload?path=${encodeURIComponent(`${workingDir}/${path}`)}`, { method: 'POST', headers: { 'X-Session-API-Key': KEY }, body: form });
      expect(res.status).toBe(200);
    };
    await upload('AGENTS.md', 'Always run the linter before committing.\n');
    await upload('.openhands/skills/db.md', '---\nname: database\ntriggers:\n- postgres\n---\nThe database is PostgreSQL 17.\n');

    const text = `please deploy it to postgres ${randomUUID()}`;
    llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'Deployed.' } }] }, { toolCalls: [{ name: 'finish', arguments: { message: 'Again.' } }] }]);
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage(text, true))).status).toBe(200);
    expect((await waitStatus(id, ['finished', 'error'])).execution_status).toBe('finished');

    const [request] = llm.requestsFor(text);
    const system = String(request.body.messages[0].content);
    expect(system).toContain('<REPO_CONTEXT>');
    expect(system).toContain('[BEGIN context from [agents]]\nAlways run the linter before committing.\n\n[END Context]');
    expect(system).toContain('<name>database</name>');
    expect(system).toMatch(/<CURRENT_DATETIME>\nThe current date and time is: \d{4}-\d\d-\d\dT\d\d:\d\d\n<\/CURRENT_DATETIME>/);
    const user = String(request.body.messages[1].content);
    expect(user.startsWith(`${text}\n<EXTRA_INFO>`)).toBe(true);
    expect(user).toContain('keyword match for "postgres"');
    expect(user).toContain('The database is PostgreSQL 17.');
    expect(user).toContain('keyword match for "deploy"');
    expect(user).toContain('Deploy with `make ship`.');
    expect(user.endsWith('</EXTRA_INFO>\nAnswer briefly.')).toBe(true);

    let log = await events(id);
    // The agent the project skills joined is recorded just before the SystemPromptEvent, its key masked.
    expect(log.slice(0, 2).map((e) => e.key ?? e.kind)).toEqual(['agent', 'SystemPromptEvent']);
    expect(log[0].value.agent_context.skills.map((s: { name: string }) => s.name)).toEqual(['agents', 'database', 'deploy']);
    expect(JSON.stringify(log[0])).not.toContain(LLM_KEY);
    const prompt = log.find((e) => e.kind === 'SystemPromptEvent');
    expect(prompt.dynamic_context.text).toContain('<REPO_CONTEXT>');
    expect(prompt.system_prompt.text).not.toContain('REPO_CONTEXT');
    const message = log.find((e) => e.kind === 'MessageEvent' && e.source === 'user');
    expect(message.activated_skills).toEqual(['database', 'deploy']);
    expect(message.extended_content).toHaveLength(1);
    expect(message.llm_message.content).toEqual([{ type: 'text', text, cache_prompt: false }]);

    const info = (await call('GET', `/api/conversations/${id}`)).body;
    expect(ConversationInfoSchema.safeParse(info).success).toBe(true);
    expect(info.activated_knowledge_skills).toEqual(['database', 'deploy']);
    expect(info.invoked_skills).toEqual([]);
    // Skills are trimmed from ConversationInfo unless asked for; the project's joined the agent's.
    expect(info.agent.agent_context.skills).toEqual([]);
    const withSkills = (await call('GET', `/api/conversations/${id}?include_skills=true`)).body;
    expect(withSkills.agent.agent_context.skills.map((s: { name: string }) => s.name)).toEqual(['agents', 'database', 'deploy']);

    // A skill already activated is not injected again; the suffix still is.
    expect((await call('POST', `/api/conversations/${id}/events`, userMessage('deploy once more', true))).status).toBe(200);
    await waitStatus(id, ['finished', 'error']);
    log = await events(id);
    const again = log.filter((e) => e.kind === 'MessageEvent' && e.source === 'user')[1];
    expect(again.activated_skills).toEqual([]);
    expect(again.extended_content).toEqual([{ type: 'text', text: 'Answer briefly.', cache_prompt: false }]);
    const last = llm.requestsFor(text).at(-1)!;
    expect(String(last.body.messages.at(-1)!.content)).toBe('deploy once more\nAnswer briefly.');
  });

  it('without load_project_skills the working dir is not read; without agent_context no dynamic context', async () => {
    const text = `plain ${randomUUID()}`;
    llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'ok' } }] }]);
    const id = await start(text);
    await waitStatus(id, ['finished', 'error']);
    const prompt = (await events(id)).find((e) => e.kind === 'SystemPromptEvent');
    expect(prompt).not.toHaveProperty('dynamic_context');
    expect((await call('POST', '/api/conversations', { agent: agent({ agent_context: { skills: [{ name: 'a', content: 'x' }, { name: 'a', content: 'y' }] } }), workspace: { kind: 'LocalWorkspace', working_dir: '/srv/x' } })).status).toBe(422);
  });
});
