import {
  AgentProfileDiagnosticsSchema,
  AgentProfileListSchema,
  ConversationInfoSchema,
  LlmBalanceSchema,
  ProviderConnectionSchema,
  SECRET_MASK,
} from '@berth/contracts';
import { Database } from '@berth/persistence';
import { LlmStub } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import { api, createTenant, startServer, STORAGES, TestServer, userMessage, waitForStatus } from './support/server';

const KEY = 'agent-profiles-server-key';
const LLM_KEY = 'sk-profile-key-never-shown';
const CONNECTION_KEY = 'sk-connection-key-never-shown';
const ROTATED_KEY = 'sk-rotated-key-never-shown';
const SECRETS = [LLM_KEY, CONNECTION_KEY, ROTATED_KEY, 'secret-value-allowed', 'secret-value-denied'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The keys OpenHands 1.58.2 dumps for an OpenHands agent profile, in its order. */
const PROFILE_KEYS = [
  'schema_version',
  'agent_kind',
  'id',
  'name',
  'revision',
  'mcp_server_refs',
  'secret_refs',
  'llm_profile_ref',
  'agent',
  'tools',
  'persona',
  'system_message_suffix',
  'disabled_skills',
  'public_skills',
  'condenser',
  'verification',
  'enable_classify_and_switch_llm_tool',
  'meta_profile_ref',
  'tool_concurrency_limit',
];

describe.each(STORAGES)('agent profiles, provider connections and the LLM balance (%s)', (storage) => {
  const llm = new LlmStub();
  let server: TestServer;
  let tenant: { tenantId: string; key: string };
  /** Everything the server process wrote while this suite ran: no secret may be in it. */
  const written: string[] = [];
  const writes = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  const answers: unknown[] = [];
  const as = async (key: string, method: string, path: string, body?: unknown) => {
    const res = await api(server, method, path, { body, key });
    answers.push(res.body);
    return res;
  };
  const call = (method: string, path: string, body?: unknown) => as(tenant.key, method, path, body);
  const db = () => server.app.get(Database).prisma;

  beforeAll(async () => {
    await llm.start();
    process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (writes.out as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (writes.err as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', LOG_LEVEL: 'verbose' });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    // The capture saw the server's own log lines (LOG_LEVEL verbose), so the check below means something.
    expect(written.join('')).toContain('Mapped {/api/agent-profiles/:name, POST}');
    const seen = JSON.stringify(answers) + written.join('');
    for (const secret of SECRETS) expect({ secret, leaked: seen.includes(secret) }).toEqual({ secret, leaked: false });
  });
  beforeEach(async () => {
    tenant = await createTenant(server);
  });

  const saveLlmProfile = async (name: string, llmConfig: Record<string, unknown>) => {
    const res = await call('POST', `/api/profiles/${name}`, { llm: llmConfig, include_secrets: true });
    expect(res.status).toBe(201);
  };
  const waitStatus = (id: string, statuses: string[], timeoutMs = 60_000) => waitForStatus(server, tenant.key, id, statuses, timeoutMs, 100);

  it('takes the default agent profile Agent Canvas onboarding saves, activates it by id, and leaves agent_settings alone', async () => {
    // Onboarding: the LLM as a profile, activated; then an agent profile that references it.
    await saveLlmProfile('openai-gpt', { model: 'openai/gpt-4o', api_key: LLM_KEY, base_url: 'http://127.0.0.1:9/v1' });
    expect((await call('POST', '/api/profiles/openai-gpt/activate')).status).toBe(200);
    const saved = await call('POST', '/api/agent-profiles/default', { agent_kind: 'openhands', llm_profile_ref: 'openai-gpt' });
    expect(saved.status).toBe(201);
    expect(saved.body).toEqual({ name: 'default', message: "Agent profile 'default' saved" });

    const got = await call('GET', '/api/agent-profiles/default');
    expect(got.status).toBe(200);
    expect(got.body.name).toBe('default');
    const profile = got.body.profile;
    expect(Object.keys(profile)).toEqual(PROFILE_KEYS);
    expect(profile).toMatchObject({
      schema_version: 4,
      agent_kind: 'openhands',
      name: 'default',
      revision: 0,
      llm_profile_ref: 'openai-gpt',
      agent: 'CodeActAgent',
      tools: null,
      condenser: { condenser_kind: 'llm_summarizing', enabled: true, max_size: 240 },
      verification: { critic_enabled: false, critic_mode: 'finish_and_message' },
      tool_concurrency_limit: 1,
    });
    expect(profile.id).toMatch(UUID);

    const settingsBefore = (await call('GET', '/api/settings')).body;
    const activated = await call('POST', `/api/agent-profiles/${profile.id}/activate`);
    expect(activated.status).toBe(200);
    expect(activated.body).toEqual({ id: profile.id, message: `Agent profile '${profile.id}' activated`, agent_settings_applied: false });
    const settingsAfter = (await call('GET', '/api/settings')).body;
    expect(settingsAfter.active_agent_profile_id).toBe(profile.id);
    expect(settingsAfter.agent_settings).toEqual(settingsBefore.agent_settings);

    const list = await call('GET', '/api/agent-profiles');
    expect(AgentProfileListSchema.parse(list.body)).toEqual({
      profiles: [{ id: profile.id, name: 'default', agent_kind: 'openhands', revision: 0, llm_profile_ref: 'openai-gpt', mcp_server_refs: null }],
      active_agent_profile_id: profile.id,
    });

    // Overwriting keeps the id and bumps the revision; an id the client sends is not taken.
    const edited = await call('POST', '/api/agent-profiles/other-name', { ...profile, id: randomUUID(), revision: 9, tools: [{ name: 'terminal' }] });
    expect(edited.status).toBe(201);
    const other = (await call('GET', '/api/agent-profiles/other-name')).body.profile;
    expect(other).toMatchObject({ name: 'other-name', revision: 0, tools: [{ name: 'terminal', params: {} }] });
    expect(other.id).not.toBe(profile.id);
    await call('POST', '/api/agent-profiles/default', { ...profile, system_message_suffix: 'Be brief.' });
    const again = (await call('GET', '/api/agent-profiles/default')).body.profile;
    expect(again).toMatchObject({ id: profile.id, revision: 1, system_message_suffix: 'Be brief.' });

    // The pointer also moves through PATCH /api/settings; an id no profile has is a 404.
    expect((await call('PATCH', '/api/settings', { active_agent_profile_id: other.id })).body.active_agent_profile_id).toBe(other.id);
    expect((await call('PATCH', '/api/settings', { active_agent_profile_id: randomUUID() })).status).toBe(404);
  });

  it('makes "default" from the settings when no profile is active, and keeps one active when profiles go', async () => {
    const first = await call('GET', '/api/agent-profiles');
    expect(first.status).toBe(200);
    expect(first.body.profiles).toEqual([expect.objectContaining({ name: 'default', llm_profile_ref: 'default', revision: 0 })]);
    expect(first.body.active_agent_profile_id).toBe(first.body.profiles[0].id);
    // No real LLM configuration yet: no keyless "default" LLM profile is made; the reference dangles.
    expect((await call('GET', '/api/profiles')).body.profiles).toEqual([]);
    const dry = await call('POST', '/api/agent-profiles/default/materialize');
    expect(dry.status).toBe(200);
    expect(AgentProfileDiagnosticsSchema.parse(dry.body)).toEqual(dry.body);
    expect(dry.body).toMatchObject({ valid: false, llm_profile_resolved: false, errors: ["LLM profile 'default' not found"], resolved_settings: null });

    // A tenant whose settings carry a key: its LLM becomes the "default" LLM profile.
    const keyed = await createTenant(server);
    await as(keyed.key, 'PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'openai/seeded', api_key: LLM_KEY, base_url: llm.url }, tools: [{ name: 'terminal' }] } });
    const seeded = (await as(keyed.key, 'GET', '/api/agent-profiles')).body;
    expect(seeded.profiles).toEqual([expect.objectContaining({ name: 'default', llm_profile_ref: 'default' })]);
    expect((await as(keyed.key, 'GET', '/api/profiles')).body.profiles).toEqual([expect.objectContaining({ name: 'default', model: 'openai/seeded', api_key_set: true })]);
    const valid = (await as(keyed.key, 'POST', '/api/agent-profiles/default/materialize', {})).body;
    expect(valid).toMatchObject({ valid: true, errors: [], llm_profile_resolved: true, llm_api_key_set: true });
    expect(valid.resolved_settings.llm).toMatchObject({ model: 'openai/seeded', api_key: SECRET_MASK, base_url: llm.url });
    expect(valid.resolved_settings.tools).toEqual([{ name: 'terminal', params: {} }]);

    // A draft is previewed without being saved; what it names that does not exist is reported.
    const draft = await call('POST', '/api/agent-profiles/draft/materialize', {
      profile: { llm_profile_ref: 'nope', mcp_server_refs: ['github'], tools: [{ name: 'terminal' }, { name: 'browser_tool_set' }, { name: 'delegate' }] },
    });
    expect(draft.status).toBe(200);
    expect(draft.body).toMatchObject({
      valid: false,
      unusable_tools: ['browser_tool_set', 'delegate'],
      dangling_mcp_server_refs: ['github'],
      errors: ['Tool(s) this server cannot run: delegate', "LLM profile 'nope' not found", 'MCP server(s) not configured: github'],
    });
    expect((await call('GET', '/api/agent-profiles/draft')).status).toBe(404);

    // Deleting the active profile makes "default" active again, made anew when it was the one deleted.
    const defaultId = first.body.active_agent_profile_id;
    await call('POST', '/api/agent-profiles/mine', { llm_profile_ref: 'default' });
    const mine = (await call('GET', '/api/agent-profiles/mine')).body.profile;
    await call('POST', `/api/agent-profiles/${mine.id}/activate`);
    expect((await call('DELETE', '/api/agent-profiles/mine')).body).toEqual({ name: 'mine', message: "Agent profile 'mine' deleted" });
    expect((await call('DELETE', '/api/agent-profiles/mine')).status).toBe(200);
    expect((await call('GET', '/api/settings')).body.active_agent_profile_id).toBe(defaultId);
    await call('DELETE', '/api/agent-profiles/default');
    const reseeded = (await call('GET', '/api/settings')).body.active_agent_profile_id;
    expect(reseeded).toMatch(UUID);
    expect(reseeded).not.toBe(defaultId);
    expect((await call('GET', '/api/agent-profiles/default')).body.profile.id).toBe(reseeded);

    // A rename keeps the id, so the pointer stays on it.
    const renamed = await call('POST', '/api/agent-profiles/default/rename', { new_name: 'main' });
    expect(renamed.body).toEqual({ name: 'main', message: "Agent profile 'default' renamed to 'main'" });
    expect((await call('POST', '/api/agent-profiles/main/rename', { new_name: 'main' })).body.message).toBe("Agent profile 'main' unchanged (same name)");
    const after = (await call('GET', '/api/agent-profiles')).body;
    expect(after).toEqual({ profiles: [expect.objectContaining({ id: reseeded, name: 'main' })], active_agent_profile_id: reseeded });
  });

  it('refuses what OpenHands refuses: 422 for bad names and bodies, 404 for what the tenant does not have, 409 for taken names', async () => {
    const bodies: [unknown, unknown][] = [
      [{ agent_kind: 'openhands' }, [{ loc: ['openhands', 'llm_profile_ref'], type: 'missing', msg: 'Field required' }]],
      [{ llm_profile_ref: 'x', bogus: 1 }, [{ loc: ['openhands', 'bogus'], type: 'extra_forbidden', msg: 'Extra inputs are not permitted' }]],
      [{ llm_profile_ref: 'x', enable_sub_agents: true }, [{ loc: ['openhands'], type: 'value_error', msg: 'Value error, Retired tool switches were removed; select tools instead.' }]],
      [{ llm_profile_ref: 'x', schema_version: 9 }, 'Invalid agent profile'],
      [{ llm_profile_ref: 'x', schema_version: 'four' }, 'Invalid agent profile'],
      [{ llm_profile_ref: '' }, [expect.objectContaining({ loc: ['openhands', 'llm_profile_ref'] })]],
      [{ agent_kind: 'acp' }, expect.arrayContaining([expect.objectContaining({ loc: ['openhands', 'agent_kind'] })])],
      [{ llm_profile_ref: 'x', tool_concurrency_limit: 4 }, [expect.objectContaining({ loc: ['openhands', 'tool_concurrency_limit'] })]],
      [{ llm_profile_ref: 'x', persona: 'A pirate' }, [expect.objectContaining({ loc: ['openhands', 'persona'] })]],
      [{ llm_profile_ref: 'x', tools: [{ name: 'terminal', params: [] }] }, [expect.objectContaining({ loc: ['openhands', 'tools', 0, 'params'] })]],
    ];
    for (const [body, detail] of bodies) {
      const res = await call('POST', '/api/agent-profiles/p1', body);
      expect({ body, status: res.status, detail: res.body.detail }).toEqual({ body, status: 422, detail });
    }
    expect((await call('POST', '/api/agent-profiles/p1', [1])).status).toBe(422);
    expect((await call('POST', '/api/agent-profiles/p1')).status).toBe(422);
    const badName = await call('POST', '/api/agent-profiles/-bad', { llm_profile_ref: 'x' });
    expect(badName.status).toBe(422);
    expect(badName.body.detail[0].loc).toEqual(['path', 'name']);
    expect((await call('GET', '/api/agent-profiles/p1')).status).toBe(404);

    await call('POST', '/api/agent-profiles/a', { llm_profile_ref: 'x' });
    await call('POST', '/api/agent-profiles/b', { llm_profile_ref: 'x' });
    expect((await call('GET', '/api/agent-profiles/missing')).body).toEqual({ detail: "Agent profile 'missing' not found" });
    expect((await call('POST', '/api/agent-profiles/missing/rename', { new_name: 'c' })).body).toEqual({ detail: "Agent profile 'missing' not found" });
    expect((await call('POST', '/api/agent-profiles/a/rename', { new_name: 'b' })).body).toEqual({ detail: "Agent profile 'b' already exists" });
    expect((await call('POST', '/api/agent-profiles/a/rename', { new_name: '../b' })).status).toBe(422);
    expect((await call('POST', '/api/agent-profiles/a/rename', {})).status).toBe(422);
    const id = randomUUID();
    expect((await call('POST', `/api/agent-profiles/${id}/activate`)).body).toEqual({ detail: `Agent profile with id '${id}' not found` });
    const aId = (await call('GET', '/api/agent-profiles/a')).body.profile.id as string;
    // OpenHands compares the id as text: another spelling of it is no profile's id.
    expect((await call('POST', `/api/agent-profiles/${aId.replace(/-/g, '')}/activate`)).status).toBe(404);
    expect((await call('POST', `/api/agent-profiles/${aId.toUpperCase()}/activate`)).status).toBe(404);
    expect((await call('POST', '/api/agent-profiles/missing/materialize')).status).toBe(404);
    expect((await call('POST', '/api/agent-profiles/a/materialize', { profile: 5 })).body.detail).toEqual([
      expect.objectContaining({ loc: ['body', 'profile'], type: 'value_error', msg: 'Value error, profile must be an object' }),
    ]);
    expect((await call('POST', '/api/agent-profiles/a/materialize', { draft: {} })).status).toBe(422);
    expect((await call('POST', '/api/agent-profiles/a/materialize', { profile: { agent_kind: 'openhands' } })).body.detail[0].loc).toEqual(['openhands', 'llm_profile_ref']);

    // The limit, as OpenHands: 50 profiles; overwriting one is still allowed.
    for (let i = (await call('GET', '/api/agent-profiles')).body.profiles.length; i < 50; i++) {
      expect((await call('POST', `/api/agent-profiles/fill-${i}`, { llm_profile_ref: 'x' })).status).toBe(201);
    }
    const full = await call('POST', '/api/agent-profiles/one-more', { llm_profile_ref: 'x' });
    expect(full.status).toBe(409);
    expect(full.body.detail).toBe('Agent profile limit reached (50). Delete a profile before saving a new one.');
    expect((await call('POST', '/api/agent-profiles/a', { llm_profile_ref: 'y' })).status).toBe(201);
  });

  it('keeps LLM profiles and the agent profiles that reference them in step: no delete while referenced, renames cascade', async () => {
    await saveLlmProfile('fast', { model: 'openai/fast' });
    await call('POST', '/api/agent-profiles/coder', { llm_profile_ref: 'fast' });
    await call('POST', '/api/agent-profiles/reviewer', { llm_profile_ref: 'fast' });
    const refused = await call('DELETE', '/api/profiles/fast');
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toBe('LLM profile is referenced by 2 agent profile(s): coder, reviewer');

    expect((await call('POST', '/api/profiles/fast/rename', { new_name: 'quick' })).status).toBe(200);
    const coder = (await call('GET', '/api/agent-profiles/coder')).body.profile;
    expect(coder).toMatchObject({ llm_profile_ref: 'quick', revision: 0 });
    expect((await call('GET', '/api/agent-profiles')).body.profiles.filter((p: { llm_profile_ref: string }) => p.llm_profile_ref === 'quick')).toHaveLength(2);

    await call('DELETE', '/api/agent-profiles/coder');
    await call('DELETE', '/api/agent-profiles/reviewer');
    expect((await call('DELETE', '/api/profiles/quick')).status).toBe(200);
  });

  it('keeps provider connections: the key sealed and never shown, linked LLM profiles resolve it, rotation reaches them', async () => {
    expect((await call('GET', '/api/llm/provider-connections')).body).toEqual([]);
    const created = await call('POST', '/api/llm/provider-connections', { display_name: 'Team key', api_key: CONNECTION_KEY, base_url: llm.url });
    expect(created.status).toBe(201);
    expect(ProviderConnectionSchema.parse(created.body)).toEqual(created.body);
    expect(created.body).toMatchObject({ display_name: 'Team key', provider: 'custom', base_url: llm.url, api_key_set: true });
    expect(created.body.id).toMatch(/^[0-9a-f]{32}$/);
    expect(Number.isInteger(created.body.created_at) && created.body.created_at <= Date.now() / 1000).toBe(true);
    const id = created.body.id as string;
    const row = await db().providerConnection.findUniqueOrThrow({ where: { tenantId_id: { tenantId: tenant.tenantId, id } } });
    expect(row.apiKey).toMatch(/^gAAAAA/);
    expect((await call('GET', '/api/llm/provider-connections')).body).toEqual([created.body]);

    // A profile linked to the connection keeps no key or base_url of its own.
    await saveLlmProfile('team', { model: 'openai/team-model', provider_connection_id: id, api_key: LLM_KEY, base_url: 'http://127.0.0.1:9/v1' });
    const stored = await db().llmProfile.findUniqueOrThrow({ where: { tenantId_name: { tenantId: tenant.tenantId, name: 'team' } } });
    expect(stored.llm).toMatchObject({ api_key: null, base_url: null, provider_connection_id: id });
    await saveLlmProfile('orphan', { model: 'openai/orphan', provider_connection_id: 'gone-connection' });
    expect((await call('GET', '/api/profiles')).body.profiles).toEqual([
      { name: 'orphan', model: 'openai/orphan', base_url: null, provider_connection_id: 'gone-connection', provider_connection_broken: true, api_key_set: false },
      { name: 'team', model: 'openai/team-model', base_url: null, provider_connection_id: id, provider_connection_broken: false, api_key_set: true },
    ]);
    expect((await call('GET', '/api/profiles/team')).body).toMatchObject({ api_key_set: true, config: { api_key: null, provider_connection_id: id } });
    const orphan = await call('POST', '/api/profiles/orphan/activate');
    expect(orphan.status).toBe(422);
    expect(orphan.body.detail).toMatch(/references provider connection 'gone-connection', which does not exist/);

    // Activating resolves the connection into the settings (the id is kept for the next rotation).
    expect((await call('POST', '/api/profiles/team/activate')).status).toBe(200);
    const settings = (await call('GET', '/api/settings')).body;
    expect(settings.agent_settings.llm).toMatchObject({ model: 'openai/team-model', base_url: llm.url, api_key: SECRET_MASK, provider_connection_id: id });

    // Still used: not deleted.
    const used = await call('DELETE', `/api/llm/provider-connections/${id}`);
    expect(used.status).toBe(409);
    expect(used.body.detail).toBe(
      'Provider connection cannot be deleted while it is referenced by LLM profile(s): team and referenced by the active agent settings. Update those references before deleting it.',
    );

    // Validation, as OpenHands.
    for (const body of [
      { api_key: 'k' },
      { display_name: 'x' },
      { display_name: 'x', api_key: '   ' },
      { display_name: 'x', api_key: SECRET_MASK },
      { display_name: '', api_key: 'k' },
      { display_name: 'x', api_key: 'k', extra: true },
      { display_name: 'x'.repeat(129), api_key: 'k' },
    ]) {
      const res = await call('POST', '/api/llm/provider-connections', body);
      expect({ body, status: res.status }).toEqual({ body, status: 422 });
    }
    expect((await call('PATCH', `/api/llm/provider-connections/${id}`, {})).body).toEqual({ detail: 'Provide at least one provider connection field to update' });
    expect((await call('PATCH', `/api/llm/provider-connections/${id}`, { api_key: null })).body).toEqual({ detail: 'api_key cannot be cleared; provide a new key to rotate it' });
    expect((await call('PATCH', `/api/llm/provider-connections/${id}`, { display_name: null })).body.detail).toEqual([
      expect.objectContaining({ loc: ['body'], type: 'value_error', msg: 'Value error, display_name cannot be set to null' }),
    ]);
    expect((await call('PATCH', `/api/llm/provider-connections/${id}`, { provider: null })).status).toBe(422);
    expect((await call('PATCH', '/api/llm/provider-connections/nope', { display_name: 'x' })).body).toEqual({ detail: "Provider connection 'nope' not found" });
    expect((await call('DELETE', '/api/llm/provider-connections/nope')).status).toBe(404);

    const rotated = await call('PATCH', `/api/llm/provider-connections/${id}`, { api_key: ROTATED_KEY, display_name: 'Team key 2' });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ id, display_name: 'Team key 2', base_url: llm.url, api_key_set: true });
    const rotatedRow = await db().providerConnection.findUniqueOrThrow({ where: { tenantId_id: { tenantId: tenant.tenantId, id } } });
    expect(rotatedRow.apiKey).not.toBe(row.apiKey);

    // A conversation from an agent profile on the linked LLM profile runs with the rotated key.
    await call('POST', '/api/agent-profiles/teamwork', { llm_profile_ref: 'team' });
    const profileId = (await call('GET', '/api/agent-profiles/teamwork')).body.profile.id;
    const text = `team run ${storage} ${randomUUID()}`;
    llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'Done with the team key.' } }] }]);
    const started = await call('POST', '/api/conversations', { agent_profile_id: profileId, workspace: { working_dir: '/workspace/project' }, initial_message: userMessage(text) });
    expect(started.status).toBe(201);
    expect((await waitStatus(started.body.id, ['finished', 'error'])).execution_status).toBe('finished');
    const seen = llm.requestsFor(text);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0].headers.authorization).toBe(`Bearer ${ROTATED_KEY}`);
    expect(seen[0].body.model).toBe('team-model');

    // References gone, the connection goes; the answer says its key is gone too.
    await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { provider_connection_id: null } } });
    await call('DELETE', '/api/agent-profiles/teamwork');
    await call('DELETE', '/api/profiles/team');
    const deleted = await call('DELETE', `/api/llm/provider-connections/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ id, display_name: 'Team key 2', api_key_set: false });
    expect((await call('GET', '/api/llm/provider-connections')).body).toEqual([]);
  });

  it('starts a conversation from an agent profile: its LLM, tools, suffix and secret scope, recorded as launched_agent_profile', async () => {
    // The settings point at a dead endpoint: only the profile's LLM can answer.
    await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'openai/settings-model', api_key: 'sk-settings', base_url: 'http://127.0.0.1:9/v1' } } });
    await saveLlmProfile('stubbed', { model: 'openai/profile-model', api_key: LLM_KEY, base_url: llm.url, num_retries: 0 });
    await call('POST', '/api/agent-profiles/runner', {
      llm_profile_ref: 'stubbed',
      tools: [{ name: 'terminal' }],
      system_message_suffix: 'SUFFIX-FROM-THE-PROFILE',
      secret_refs: ['ALLOWED_TOKEN'],
    });
    const profile = (await call('GET', '/api/agent-profiles/runner')).body.profile;
    const text = `profile run ${storage} ${randomUUID()}`;
    llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'Ran on the profile LLM.' } }] }]);
    const started = await call('POST', '/api/conversations', {
      agent_profile_id: profile.id,
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: userMessage(text),
      secrets: { ALLOWED_TOKEN: 'secret-value-allowed', DENIED_TOKEN: 'secret-value-denied' },
    });
    expect(started.status).toBe(201);
    expect(ConversationInfoSchema.safeParse(started.body).success).toBe(true);
    expect(started.body.launched_agent_profile).toEqual({ agent_profile_id: profile.id, revision: 0, secret_refs: ['ALLOWED_TOKEN'], llm_profile_ref: null });
    expect(started.body.agent.llm).toMatchObject({ model: 'openai/profile-model', base_url: llm.url, api_key: null, stream: true });
    expect(started.body.agent.tools).toEqual([{ name: 'terminal', params: {} }]);
    expect(Object.keys(started.body.secret_registry.secret_sources)).toEqual(['ALLOWED_TOKEN']);

    const info = await waitStatus(started.body.id, ['finished', 'error']);
    expect(info.execution_status).toBe('finished');
    expect(info.launched_agent_profile.agent_profile_id).toBe(profile.id);
    const seen = llm.requestsFor(text);
    expect(seen[0].headers.authorization).toBe(`Bearer ${LLM_KEY}`);
    expect(seen[0].body.model).toBe('profile-model');
    const toolNames = (seen[0].body.tools ?? []).map((t) => t.function.name);
    expect(toolNames).toContain('terminal');
    expect(toolNames).not.toContain('file_editor');
    expect(JSON.stringify(seen[0].body.messages[0])).toContain('SUFFIX-FROM-THE-PROFILE');

    // A per-launch LLM profile (agent_launch_additions.llm_profile_ref) is recorded too.
    await saveLlmProfile('alt', { model: 'openai/alt-model', api_key: LLM_KEY, base_url: llm.url, num_retries: 0 });
    const altText = `alt run ${storage} ${randomUUID()}`;
    llm.script(altText, [{ toolCalls: [{ name: 'finish', arguments: { message: 'Alt.' } }] }]);
    const alt = await call('POST', '/api/conversations', {
      agent_profile_id: profile.id,
      agent_launch_additions: { llm_profile_ref: 'alt' },
      workspace: { working_dir: '/workspace/project' },
      initial_message: userMessage(altText),
    });
    expect(alt.status).toBe(201);
    expect(alt.body.launched_agent_profile.llm_profile_ref).toBe('alt');
    await waitStatus(alt.body.id, ['finished', 'error']);
    expect(llm.requestsFor(altText)[0].body.model).toBe('alt-model');

    // What cannot launch: an id the tenant has no profile for, a reference that names nothing, a tool Berth cannot run.
    const unknown = randomUUID();
    const missing = await call('POST', '/api/conversations', { agent_profile_id: unknown, workspace: { working_dir: '/workspace/project' } });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ detail: `Agent profile with id '${unknown}' not found` });
    await call('POST', '/api/agent-profiles/dangling', { llm_profile_ref: 'no-such-llm', mcp_server_refs: ['github'] });
    const danglingId = (await call('GET', '/api/agent-profiles/dangling')).body.profile.id;
    const dangling = await call('POST', '/api/conversations', { agent_profile_id: danglingId, workspace: { working_dir: '/workspace/project' } });
    expect(dangling.status).toBe(422);
    expect(dangling.body.detail).toEqual({
      code: 'unresolved_profile_references',
      message: "LLM profile 'no-such-llm' not found; MCP server(s) not configured: github",
      dangling_llm_profile_ref: 'no-such-llm',
      dangling_mcp_server_refs: ['github'],
      dangling_meta_profile_ref: null,
      dangling_meta_profile_llm_refs: [],
    });
    await call('POST', '/api/agent-profiles/browser', { llm_profile_ref: 'stubbed', tools: [{ name: 'terminal' }, { name: 'delegate' }] });
    const browserId = (await call('GET', '/api/agent-profiles/browser')).body.profile.id;
    const unusable = await call('POST', '/api/conversations', { agent_profile_id: browserId, workspace: { working_dir: '/workspace/project' } });
    expect(unusable.status).toBe(422);
    expect(unusable.body.detail).toEqual({ code: 'invalid_agent_launch', message: 'The agent uses tools this server cannot run: delegate' });

    // The secrets list, scoped by the profile.
    await call('PUT', '/api/settings/secrets', { name: 'ALLOWED_TOKEN', value: 'secret-value-allowed' });
    await call('PUT', '/api/settings/secrets', { name: 'OTHER_TOKEN', value: 'secret-value-denied' });
    expect((await call('GET', `/api/settings/secrets?agent_profile_id=${profile.id}`)).body).toEqual({ secrets: [{ name: 'ALLOWED_TOKEN', description: null }] });
    expect((await call('GET', '/api/settings/secrets')).body.secrets).toHaveLength(2);
    expect((await call('GET', `/api/settings/secrets?agent_profile_id=${randomUUID()}`)).body).toEqual({ detail: 'Agent profile not found' });
  });

  it("never shows or changes another tenant's agent profiles or provider connections", async () => {
    const other = await createTenant(server);
    const theirs = (method: string, path: string, body?: unknown) => as(other.key, method, path, body);
    await saveLlmProfile('mine', { model: 'openai/mine', api_key: LLM_KEY, base_url: llm.url });
    await call('POST', '/api/agent-profiles/private', { llm_profile_ref: 'mine', system_message_suffix: 'mine only' });
    const mine = (await call('GET', '/api/agent-profiles/private')).body.profile;
    const connection = (await call('POST', '/api/llm/provider-connections', { display_name: 'Mine', api_key: CONNECTION_KEY })).body;

    const list = (await theirs('GET', '/api/agent-profiles')).body;
    expect(list.profiles.map((p: { name: string }) => p.name)).toEqual(['default']);
    expect(list.active_agent_profile_id).not.toBe(mine.id);
    expect((await theirs('GET', '/api/agent-profiles/private')).status).toBe(404);
    expect((await theirs('POST', '/api/agent-profiles/private/rename', { new_name: 'stolen' })).status).toBe(404);
    expect((await theirs('POST', '/api/agent-profiles/private/materialize')).status).toBe(404);
    expect((await theirs('POST', `/api/agent-profiles/${mine.id}/activate`)).status).toBe(404);
    expect((await theirs('PATCH', '/api/settings', { active_agent_profile_id: mine.id })).status).toBe(404);
    expect((await theirs('DELETE', '/api/agent-profiles/private')).status).toBe(200);
    const started = await theirs('POST', '/api/conversations', { agent_profile_id: mine.id, workspace: { working_dir: '/workspace/project' } });
    expect(started.status).toBe(404);
    expect((await theirs('GET', `/api/settings/secrets?agent_profile_id=${mine.id}`)).status).toBe(404);
    // Their own profile of the same name is theirs alone.
    await theirs('POST', '/api/agent-profiles/private', { llm_profile_ref: 'theirs' });
    expect((await theirs('GET', '/api/agent-profiles/private')).body.profile.id).not.toBe(mine.id);

    expect((await theirs('GET', '/api/llm/provider-connections')).body).toEqual([]);
    expect((await theirs('PATCH', `/api/llm/provider-connections/${connection.id}`, { display_name: 'Stolen' })).status).toBe(404);
    expect((await theirs('DELETE', `/api/llm/provider-connections/${connection.id}`)).status).toBe(404);
    // A profile of theirs naming my connection id does not reach my key.
    await theirs('POST', '/api/profiles/borrow', { llm: { model: 'openai/x', provider_connection_id: connection.id } });
    expect((await theirs('GET', '/api/profiles')).body.profiles[0]).toMatchObject({ provider_connection_broken: true, api_key_set: false });
    expect((await theirs('POST', '/api/profiles/borrow/activate')).status).toBe(422);

    expect((await call('GET', '/api/agent-profiles/private')).body.profile).toEqual(mine);
    expect((await call('GET', '/api/llm/provider-connections')).body).toEqual([connection]);
  });

  it('pre-flights a draft LLM configuration with one bounded call, as the LLM settings screen does before saving', async () => {
    // Every pre-flight says "ping"; the stub answers by the key it is sent.
    llm.script('ping', (request) => {
      const auth = String(request.headers.authorization);
      if (auth === 'Bearer sk-rejected') return { status: 401, errorCode: 'invalid_api_key' };
      if (auth === 'Bearer sk-busy') return { status: 429 };
      return { text: 'ok' };
    });
    const draft = (extra: Record<string, unknown>) => ({ llm: { model: 'openai/checked-model', base_url: llm.url, ...extra }, include_secrets: true });
    const before = llm.requestsFor('ping').length;
    const ok = await call('POST', '/api/profiles/checked/validate', draft({ api_key: LLM_KEY }));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ valid: true, error: null });
    const sent = llm.requestsFor('ping')[before];
    expect(sent.headers.authorization).toBe(`Bearer ${LLM_KEY}`);
    expect(sent.body).toMatchObject({ model: 'checked-model', max_tokens: 1 });
    // Nothing is saved.
    expect((await call('GET', '/api/profiles/checked')).status).toBe(404);

    const rejected = (await call('POST', '/api/profiles/checked/validate', draft({ api_key: 'sk-rejected' }))).body;
    expect(rejected).toEqual({ valid: false, error: { type: 'LLMAuthenticationError', message: expect.any(String) } });
    // A rate limit says nothing about the configuration.
    expect((await call('POST', '/api/profiles/checked/validate', draft({ api_key: 'sk-busy' }))).body).toEqual({ valid: true, error: null });
    const unreachable = (await call('POST', '/api/profiles/checked/validate', { llm: { model: 'openai/x', api_key: LLM_KEY, base_url: 'http://127.0.0.1:9/v1' } })).body;
    expect(unreachable).toMatchObject({ valid: false, error: { type: 'LLMServiceUnavailable' } });

    // The mask stands for the saved profile's key; a linked connection's key is the one used.
    await saveLlmProfile('checked', { model: 'openai/checked-model', api_key: LLM_KEY, base_url: llm.url });
    await call('POST', '/api/profiles/checked/validate', draft({ api_key: SECRET_MASK }));
    expect(llm.requestsFor('ping').at(-1)!.headers.authorization).toBe(`Bearer ${LLM_KEY}`);
    const connection = (await call('POST', '/api/llm/provider-connections', { display_name: 'Shared', api_key: CONNECTION_KEY, base_url: llm.url })).body;
    expect((await call('POST', '/api/profiles/linked/validate', { llm: { model: 'openai/checked-model', provider_connection_id: connection.id } })).body.valid).toBe(true);
    expect(llm.requestsFor('ping').at(-1)!.headers.authorization).toBe(`Bearer ${CONNECTION_KEY}`);
    const dangling = await call('POST', '/api/profiles/linked/validate', { llm: { model: 'm', provider_connection_id: 'missing-one' } });
    expect(dangling.status).toBe(422);
    expect(dangling.body.detail).toMatch(/provider connection 'missing-one'/);
    expect((await call('POST', '/api/profiles/checked/validate', { llm: { model: 'm' }, extra: 1 })).status).toBe(422);
    expect((await call('POST', '/api/profiles/-bad/validate', draft({}))).status).toBe(422);
  });

  it('answers the LLM balance as unknown, in the shape Agent Canvas reads (it then shows no balance card)', async () => {
    const res = await call('GET', '/api/llm/balance');
    expect(res.status).toBe(200);
    expect(LlmBalanceSchema.parse(res.body)).toEqual({
      provider: null,
      limit: null,
      limit_remaining: null,
      usage: null,
      usage_daily: null,
      usage_weekly: null,
      usage_monthly: null,
      is_free_tier: false,
    });
  });

  it('requires the key on every new route', async () => {
    for (const [method, path] of [
      ['GET', '/api/agent-profiles'],
      ['GET', '/api/agent-profiles/default'],
      ['POST', '/api/agent-profiles/default'],
      ['DELETE', '/api/agent-profiles/default'],
      ['POST', '/api/agent-profiles/default/rename'],
      ['POST', `/api/agent-profiles/${randomUUID()}/activate`],
      ['POST', '/api/agent-profiles/default/materialize'],
      ['GET', '/api/llm/provider-connections'],
      ['POST', '/api/llm/provider-connections'],
      ['PATCH', '/api/llm/provider-connections/x'],
      ['DELETE', '/api/llm/provider-connections/x'],
      ['GET', '/api/llm/balance'],
      ['POST', '/api/profiles/x/validate'],
    ]) {
      const res = await api(server, method, path, { key: 'wrong', body: method === 'GET' || method === 'DELETE' ? undefined : {} });
      expect({ path, method, status: res.status }).toEqual({ path, method, status: 401 });
    }
  });
});
