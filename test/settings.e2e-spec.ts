import {
  ProfileDetailSchema,
  ProfileListSchema,
  SECRET_MASK,
  SecretsListSchema,
  SettingsFormSchema,
  SettingsResponseSchema,
} from '@berth/contracts';
import { Fernet, SecretDecryptError, SecretVault } from '@berth/crypto';
import { Database } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { SettingsService } from '../apps/gateway/src/settings/settings.service';
import { AGENT, api, createTenant, startRequest, startServer, STORAGES, TestServer, useServer } from './support/server';

const KEY = 'settings-server-key';
const LLM_KEY = 'sk-live-never-in-a-response';

describe.each(STORAGES)('settings, secrets and LLM profiles (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY });
  /** A fresh tenant per test: every test starts from the defaults. */
  let tenant: { tenantId: string; key: string };
  const as = (key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    api(ctx.server, method, path, { body, key, headers });
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => as(tenant.key, method, path, body, headers);
  const storedAgentSettings = async (tenantId: string) =>
    (await ctx.server.app.get(Database).prisma.tenantSettings.findUniqueOrThrow({ where: { tenantId } })).agentSettings as any;

  beforeEach(async () => {
    tenant = await createTenant(ctx.server);
  });

  it('starts a conversation from agent_settings as Agent Canvas sends them: its own token back, client tools, its id', async () => {
    await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'openai/stub', api_key: LLM_KEY, base_url: 'http://127.0.0.1:9/v1' } } });
    const shown = (await call('GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'encrypted' })).body.agent_settings;
    const conversationId = randomUUID();
    const body = {
      agent_settings: {
        schema_version: 5,
        agent_kind: 'openhands',
        llm: { ...shown.llm, stream: true },
        tools: [{ name: 'terminal', params: {} }],
        agent_context: { skills: [], load_public_skills: false },
      },
      workspace: { kind: 'LocalWorkspace', working_dir: `/workspace/project/${conversationId.replace(/-/g, '')}` },
      client_tools: [{ name: 'canvas_ui_control', description: 'Drive the UI', parameters: { type: 'object', properties: {} } }],
      confirmation_policy: { kind: 'NeverConfirm' },
      worktree: true,
      autotitle: true,
      secrets_encrypted: true,
      conversation_id: conversationId,
      tags: { clientsource: 'agentcanvas' },
    };
    const started = await call('POST', '/api/conversations', body);
    expect(started.status).toBe(201);
    expect(started.body.id).toBe(conversationId);
    expect(started.body.agent).toMatchObject({ kind: 'Agent', llm: { model: 'openai/stub', api_key: null, stream: true }, tools: [{ name: 'terminal' }] });
    expect(started.body.client_tools.map((t: { name: string }) => t.name)).toEqual(['canvas_ui_control']);
    const row = await ctx.server.app.get(Database).prisma.conversation.findUniqueOrThrow({ where: { id: conversationId } });
    expect(ctx.server.app.get(SecretVault).openAgent(row.agent as typeof AGENT).llm.api_key).toBe(LLM_KEY);

    // No llm at all: the tenant's stored one, and every sandbox tool.
    const bare = await call('POST', '/api/conversations', { agent_settings: {}, workspace: { working_dir: '/workspace/project' } });
    expect(bare.status).toBe(201);
    expect(bare.body.agent.llm.model).toBe('openai/stub');
    expect(bare.body.agent.tools.map((t: { name: string }) => t.name)).toEqual(['terminal', 'file_editor', 'task_tracker']);

    const acp = await call('POST', '/api/conversations', { ...body, conversation_id: undefined, agent_settings: { agent_kind: 'acp' } });
    expect(acp.status).toBe(422);
    expect(acp.body.detail[0].loc).toEqual(['body', 'agent_settings', 'agent_kind']);
    const badModel = await call('POST', '/api/conversations', { ...body, conversation_id: undefined, agent_settings: { llm: { model: 42 } } });
    expect(badModel.status).toBe(422);
    expect(badModel.body.detail[0].loc).toEqual(['body', 'agent_settings', 'llm', 'model']);
    expect(JSON.stringify([started.body, bare.body, acp.body, badModel.body])).not.toContain(LLM_KEY);
  });

  it('answers the defaults to a tenant that saved nothing, in the shape Agent Canvas reads', async () => {
    const res = await call('GET', '/api/settings');
    expect(res.status).toBe(200);
    expect(SettingsResponseSchema.parse(res.body)).toEqual(res.body);
    expect(res.body).toEqual({
      agent_settings: {
        schema_version: 5,
        agent_kind: 'openhands',
        llm: {
          model: 'gpt-5.5',
          api_key: null,
          base_url: null,
          auth_type: 'api_key',
          subscription_vendor: null,
          provider_connection_id: null,
          temperature: null,
          top_p: null,
          max_output_tokens: null,
          timeout: 300,
          num_retries: 5,
          stream: false,
        },
        tools: null,
        mcp_config: {},
      },
      conversation_settings: { schema_version: 1, max_iterations: 500, confirmation_mode: false },
      llm_api_key_is_set: false,
      active_profile: null,
      active_agent_profile_id: null,
      // false, not null: null makes the UI ask for analytics consent
      misc_settings: { app_preferences: { language: 'en', user_consents_to_analytics: false, enabled_skills: [], disabled_skills: [] } },
    });
  });

  it('merges the diffs the UI sends (RFC 7386): objects merge, lists are replaced, null resets', async () => {
    const first = await call('PATCH', '/api/settings', { misc_settings_diff: { app_preferences: { enabled_skills: ['a', 'b'], disabled_skills: [], theme: 'dark' } } });
    expect(first.status).toBe(200);
    expect(first.body.misc_settings.app_preferences).toEqual({
      language: 'en',
      user_consents_to_analytics: false,
      enabled_skills: ['a', 'b'],
      disabled_skills: [],
      theme: 'dark',
    });
    await call('PATCH', '/api/settings', { misc_settings_diff: { app_preferences: { language: 'fr', enabled_skills: ['c'] }, telemetry: { consent: 'denied' } } });
    await call('PATCH', '/api/settings', {
      agent_settings_diff: { llm: { model: 'openai/gpt-4o-mini', base_url: 'http://127.0.0.1:9/v1' }, tools: [{ name: 'terminal' }] },
      conversation_settings_diff: { max_iterations: 50, confirmation_mode: true },
    });
    const patched = await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { temperature: 0.2 } }, misc_settings_diff: { app_preferences: { theme: null } } });
    expect(patched.status).toBe(200);

    const settings = (await call('GET', '/api/settings')).body;
    expect(settings).toEqual(patched.body);
    expect(settings.agent_settings.llm).toMatchObject({ model: 'openai/gpt-4o-mini', base_url: 'http://127.0.0.1:9/v1', temperature: 0.2, timeout: 300 });
    expect(settings.agent_settings.tools).toEqual([{ name: 'terminal', params: {} }]);
    expect(settings.conversation_settings).toEqual({ schema_version: 1, max_iterations: 50, confirmation_mode: true });
    expect(settings.misc_settings).toEqual({
      app_preferences: { language: 'fr', user_consents_to_analytics: false, enabled_skills: ['c'], disabled_skills: [] },
      telemetry: { consent: 'denied' },
    });

    // null resets a field to its default
    const reset = await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { base_url: null }, tools: null }, misc_settings_diff: { app_preferences: { language: null } } });
    expect(reset.body.agent_settings.llm.base_url).toBeNull();
    expect(reset.body.agent_settings.llm.model).toBe('openai/gpt-4o-mini');
    expect(reset.body.agent_settings.tools).toBeNull();
    expect(reset.body.misc_settings.app_preferences.language).toBe('en');
  });

  it('refuses unknown or wrongly typed fields with a FastAPI-style 422, and changes nothing then', async () => {
    const cases: [unknown, (string | number)[], string][] = [
      [{ agent_settings_diff: { llm: { model: 5 } } }, ['body', 'agent_settings_diff', 'llm', 'model'], 'string_type'],
      [{ agent_settings_diff: { condenser: { enabled: true } } }, ['body', 'agent_settings_diff'], 'extra_forbidden'],
      [{ agent_settings_diff: { llm: { reasoning_effort: 'high' } } }, ['body', 'agent_settings_diff', 'llm'], 'extra_forbidden'],
      [{ agent_settings_diff: { agent_kind: 'acp' } }, ['body', 'agent_settings_diff', 'agent_kind'], 'invalid_value'],
      [{ agent_settings_diff: { llm: { auth_type: 'subscription' } } }, ['body', 'agent_settings_diff', 'llm', 'auth_type'], 'invalid_value'],
      [{ agent_settings_diff: { mcp_config: { svc: { url: 'http://mcp' } } } }, ['body', 'agent_settings_diff', 'mcp_config'], 'value_error'],
      [{ agent_settings_diff: { tools: [{ name: 'browser' }] } }, ['body', 'agent_settings_diff', 'tools', 0, 'name'], 'invalid_value'],
      [{ conversation_settings_diff: { max_iterations: 'many' } }, ['body', 'conversation_settings_diff', 'max_iterations'], 'number_type'],
      [{ conversation_settings_diff: { security_analyzer: 'llm' } }, ['body', 'conversation_settings_diff'], 'extra_forbidden'],
      [{ misc_settings_diff: { app_preferences: { user_consents_to_analytics: 'yes' } } }, ['body', 'misc_settings_diff', 'app_preferences', 'user_consents_to_analytics'], 'boolean_type'],
      [{ misc_settings_diff: { app_preferences: { enabled_skills: 'all' } } }, ['body', 'misc_settings_diff', 'app_preferences', 'enabled_skills'], 'array_type'],
      [{ settings: {} }, ['body'], 'extra_forbidden'],
      [{ agent_settings_diff: [] }, ['body', 'agent_settings_diff'], 'record_type'],
      [{ active_profile: '../etc' }, ['body', 'active_profile'], 'invalid_format'],
    ];
    for (const [body, loc, type] of cases) {
      const res = await call('PATCH', '/api/settings', body);
      expect({ body, status: res.status }).toEqual({ body, status: 422 });
      expect({ body, issue: res.body.detail[0] }).toEqual({ body, issue: expect.objectContaining({ loc, type, msg: expect.any(String) }) });
    }

    // All or nothing: a bad agent diff keeps the good conversation diff from being written.
    const mixed = await call('PATCH', '/api/settings', { conversation_settings_diff: { max_iterations: 7 }, agent_settings_diff: { bogus: 1 } });
    expect(mixed.status).toBe(422);
    expect((await call('GET', '/api/settings')).body.conversation_settings.max_iterations).toBe(500);

    // A key sent with a mistake elsewhere is never echoed.
    const echo = await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { api_key: LLM_KEY, model: 5 } } });
    expect(echo.status).toBe(422);
    expect(JSON.stringify(echo.body)).not.toContain(LLM_KEY);

    expect((await api(ctx.server, 'PATCH', '/api/settings', { key: tenant.key, rawBody: '{"agent_settings_diff": ' })).status).toBe(422);
    const empty = await call('PATCH', '/api/settings', {});
    expect(empty.status).toBe(400);
    expect(empty.body.detail).toMatch(/At least one of agent_settings_diff/);
    expect((await call('PATCH', '/api/settings', { active_agent_profile_id: randomUUID() })).status).toBe(404);
    expect((await call('PATCH', '/api/settings', { active_agent_profile_id: null })).status).toBe(200);
    const badHeader = await call('GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'please' });
    expect(badHeader.status).toBe(400);
    expect(badHeader.body.detail).toMatch(/Invalid X-Expose-Secrets header value/);
  });

  it('never shows the LLM key without X-Expose-Secrets; encrypted round-trips; plaintext only for server keys', async () => {
    const saved = await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'openai/gpt-4o-mini', api_key: LLM_KEY } } });
    expect(saved.status).toBe(200);
    expect(saved.body.llm_api_key_is_set).toBe(true);
    expect(saved.body.agent_settings.llm.api_key).toBe(SECRET_MASK);
    expect(JSON.stringify(saved.body)).not.toContain(LLM_KEY);
    const stored = await storedAgentSettings(tenant.tenantId);
    expect(stored.llm.api_key).toMatch(/^gAAAAA/);
    expect(JSON.stringify(stored)).not.toContain(LLM_KEY);

    const redacted = await call('GET', '/api/settings');
    expect(redacted.body.agent_settings.llm.api_key).toBe(SECRET_MASK);
    expect(JSON.stringify(redacted.body)).not.toContain(LLM_KEY);

    const encrypted = await call('GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'encrypted' });
    expect(encrypted.status).toBe(200);
    const token: string = encrypted.body.agent_settings.llm.api_key;
    expect(token).toMatch(/^gAAAAA/);
    expect(JSON.stringify(encrypted.body)).not.toContain(LLM_KEY);
    // "true" is the legacy alias of encrypted
    expect((await call('GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'true' })).body.agent_settings.llm.api_key).toBe(token);

    // What other code (POST /api/conversations with secrets_encrypted) uses to get the key back.
    const settings = ctx.server.app.get(SettingsService);
    const principal = { tenantId: tenant.tenantId, keyId: 'test' };
    expect(await settings.revealSecret(principal, token)).toBe(LLM_KEY);
    expect(await settings.revealSecret(principal, SECRET_MASK)).toBe(LLM_KEY);
    expect(await settings.revealSecret(principal, 'sk-already-clear')).toBe('sk-already-clear');
    await expect(settings.revealSecret(principal, new Fernet('another-server').encrypt('x'))).rejects.toThrow(SecretDecryptError);
    // POST /api/conversations takes the token back with secrets_encrypted, and runs with the key.
    const started = await call('POST', '/api/conversations', startRequest({ agent: { ...AGENT, llm: { ...AGENT.llm, api_key: token } }, secrets_encrypted: true }));
    expect(started.status).toBe(201);
    const conversation = await ctx.server.app.get(Database).prisma.conversation.findUniqueOrThrow({ where: { id: started.body.id } });
    expect(ctx.server.app.get(SecretVault).openAgent(conversation.agent as typeof AGENT).llm.api_key).toBe(LLM_KEY);

    const keyless = await createTenant(ctx.server);
    await expect(settings.revealSecret({ tenantId: keyless.tenantId, keyId: 'test' }, SECRET_MASK)).rejects.toThrow(SecretDecryptError);

    // A tenant key may not have the key in clear text; the server's keys may (for the default tenant).
    const refused = await call('GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'plaintext' });
    expect(refused.status).toBe(403);
    expect(JSON.stringify(refused.body)).not.toContain(LLM_KEY);
    await as(KEY, 'PATCH', '/api/settings', { agent_settings_diff: { llm: { api_key: 'sk-default-tenant' } } });
    const plain = await as(KEY, 'GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'plaintext' });
    expect(plain.body.agent_settings.llm.api_key).toBe('sk-default-tenant');

    // Sent back as shown (token or mask), the key stays the same; a foreign token is refused.
    for (const sentBack of [token, SECRET_MASK]) {
      expect((await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { api_key: sentBack, top_p: 0.5 } } })).status).toBe(200);
      expect(await settings.revealSecret(principal, SECRET_MASK)).toBe(LLM_KEY);
    }
    const foreign = await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { api_key: new Fernet('another-server').encrypt(LLM_KEY) } } });
    expect(foreign.status).toBe(422);
    expect(foreign.body.detail[0].loc).toEqual(['body', 'agent_settings_diff', 'llm', 'api_key']);

    const cleared = await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { api_key: null } } });
    expect(cleared.body.llm_api_key_is_set).toBe(false);
    expect(cleared.body.agent_settings.llm.api_key).toBeNull();
  });

  it('keeps secrets: listed by name, values encrypted at rest, given in clear only to server keys', async () => {
    expect((await call('GET', '/api/settings/secrets')).body).toEqual({ secrets: [] });
    const created = await call('PUT', '/api/settings/secrets', { name: 'GITHUB_TOKEN', value: 'ghp-secret-value', description: 'for git push' });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({ name: 'GITHUB_TOKEN', description: 'for git push' });
    await call('PUT', '/api/settings/secrets', { name: 'API_TOKEN', value: 'api-secret-value' });
    const list = await call('GET', '/api/settings/secrets');
    expect(SecretsListSchema.parse(list.body)).toEqual({
      secrets: [
        { name: 'API_TOKEN', description: null },
        { name: 'GITHUB_TOKEN', description: 'for git push' },
      ],
    });
    expect(JSON.stringify(list.body)).not.toContain('secret-value');
    const rows = await ctx.server.app.get(Database).prisma.tenantSecret.findMany({ where: { tenantId: tenant.tenantId } });
    expect(rows.map((r) => r.value)).toEqual([expect.stringMatching(/^gAAAAA/), expect.stringMatching(/^gAAAAA/)]);

    // The value in clear text is a plaintext exposure: refused to the tenant key.
    expect((await call('GET', '/api/settings/secrets/GITHUB_TOKEN')).status).toBe(403);
    await as(KEY, 'PUT', '/api/settings/secrets', { name: 'GITHUB_TOKEN', value: 'ghp-default-tenant' });
    const value = await as(KEY, 'GET', '/api/settings/secrets/GITHUB_TOKEN');
    expect(value.status).toBe(200);
    expect(value.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(value.body).toBe('ghp-default-tenant');
    await as(KEY, 'PUT', '/api/settings/secrets', { name: 'GITHUB_TOKEN', value: 'ghp-rotated', description: null });
    expect((await as(KEY, 'GET', '/api/settings/secrets/GITHUB_TOKEN')).body).toBe('ghp-rotated');
    expect((await as(KEY, 'GET', '/api/settings/secrets/NOPE')).body).toEqual({ detail: 'Secret not found' });

    expect((await call('DELETE', '/api/settings/secrets/GITHUB_TOKEN')).body).toEqual({ deleted: true });
    expect((await call('DELETE', '/api/settings/secrets/GITHUB_TOKEN')).status).toBe(404);
    expect((await call('GET', '/api/settings/secrets')).body.secrets.map((s: { name: string }) => s.name)).toEqual(['API_TOKEN']);

    expect((await call('PUT', '/api/settings/secrets', { name: '1_BAD', value: 'x' })).status).toBe(422);
    expect((await call('PUT', '/api/settings/secrets', { name: 'OK', value: 'x', scope: 'all' })).status).toBe(422);
    expect((await call('PUT', '/api/settings/secrets', { name: 'OK' })).status).toBe(422);
    const badPath = await call('DELETE', '/api/settings/secrets/bad-name');
    expect(badPath.status).toBe(422);
    expect(badPath.body.detail[0].loc).toEqual(['path', 'name']);
  });

  it('saves, lists, renames, activates and deletes LLM profiles; keys encrypted, only api_key_set shown', async () => {
    expect((await call('GET', '/api/profiles')).body).toEqual({ profiles: [], active_profile: null });
    const saved = await call('POST', '/api/profiles/gpt', { llm: { model: 'openai/gpt-4o', api_key: 'sk-profile-key', base_url: 'http://127.0.0.1:9/v1' } });
    expect(saved.status).toBe(201);
    expect(saved.body).toEqual({ name: 'gpt', message: "Profile 'gpt' saved" });
    await call('POST', '/api/profiles/local', { llm: { model: 'ollama/qwen' }, include_secrets: false });

    const list = await call('GET', '/api/profiles');
    expect(ProfileListSchema.parse(list.body)).toEqual({
      profiles: [
        { name: 'gpt', model: 'openai/gpt-4o', base_url: 'http://127.0.0.1:9/v1', provider_connection_id: null, provider_connection_broken: false, api_key_set: true },
        { name: 'local', model: 'ollama/qwen', base_url: null, provider_connection_id: null, provider_connection_broken: false, api_key_set: false },
      ],
      active_profile: null,
    });
    const row = await ctx.server.app.get(Database).prisma.llmProfile.findUniqueOrThrow({ where: { tenantId_name: { tenantId: tenant.tenantId, name: 'gpt' } } });
    expect((row.llm as { api_key: string }).api_key).toMatch(/^gAAAAA/);

    const detail = await call('GET', '/api/profiles/gpt');
    expect(ProfileDetailSchema.parse(detail.body)).toEqual(detail.body);
    expect(detail.body).toMatchObject({ name: 'gpt', api_key_set: true, config: { model: 'openai/gpt-4o', api_key: null, auth_type: 'api_key' } });
    expect(JSON.stringify(detail.body)).not.toContain('sk-profile-key');
    expect((await call('GET', '/api/profiles/gpt', undefined, { 'X-Expose-Secrets': 'plaintext' })).status).toBe(403);
    const encrypted = (await call('GET', '/api/profiles/gpt', undefined, { 'X-Expose-Secrets': 'encrypted' })).body.config;
    expect(encrypted.api_key).toMatch(/^gAAAAA/);

    // The UI edits a profile by sending back the whole config it got (token included), plus its auth fields.
    const edited = await call('POST', '/api/profiles/gpt', { llm: { ...encrypted, temperature: 0.1, auth_type: 'api_key', subscription_vendor: null }, include_secrets: true });
    expect(edited.status).toBe(201);
    const activated = await call('POST', '/api/profiles/gpt/activate');
    expect(activated.status).toBe(200);
    expect(activated.body).toEqual({ name: 'gpt', message: "Profile 'gpt' activated and applied to current settings", llm_applied: true });
    const settings = (await call('GET', '/api/settings')).body;
    expect(settings.active_profile).toBe('gpt');
    expect(settings.llm_api_key_is_set).toBe(true);
    expect(settings.agent_settings.llm).toMatchObject({ model: 'openai/gpt-4o', base_url: 'http://127.0.0.1:9/v1', temperature: 0.1, api_key: SECRET_MASK });
    const key = (await call('GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'encrypted' })).body.agent_settings.llm.api_key;
    expect(await ctx.server.app.get(SettingsService).revealSecret({ tenantId: tenant.tenantId, keyId: 'test' }, key)).toBe('sk-profile-key');
    expect((await call('GET', '/api/profiles')).body.active_profile).toBe('gpt');

    // Renaming the active profile moves the pointer; PATCH active_profile applies a profile too.
    const renamed = await call('POST', '/api/profiles/gpt/rename', { new_name: 'main' });
    expect(renamed.body).toEqual({ name: 'main', message: "Profile 'gpt' renamed to 'main'" });
    expect((await call('GET', '/api/settings')).body.active_profile).toBe('main');
    expect((await call('POST', '/api/profiles/main/rename', { new_name: 'local' })).status).toBe(409);
    expect((await call('POST', '/api/profiles/gone/rename', { new_name: 'x' })).status).toBe(404);
    const switched = await call('PATCH', '/api/settings', { active_profile: 'local' });
    expect(switched.body).toMatchObject({ active_profile: 'local', llm_api_key_is_set: false, agent_settings: { llm: { model: 'ollama/qwen' } } });
    // with an LLM in the same request, that LLM wins
    const explicit = await call('PATCH', '/api/settings', { active_profile: 'main', agent_settings_diff: { llm: { model: 'openai/o3' } } });
    expect(explicit.body).toMatchObject({ active_profile: 'main', agent_settings: { llm: { model: 'openai/o3' } } });
    expect((await call('PATCH', '/api/settings', { active_profile: 'missing' })).body).toEqual({ detail: "Profile 'missing' not found" });
    expect((await call('PATCH', '/api/settings', { active_profile: null })).body.active_profile).toBeNull();
    await call('PATCH', '/api/settings', { active_profile: 'main' });

    expect((await call('DELETE', '/api/profiles/main')).body).toEqual({ name: 'main', message: "Profile 'main' deleted" });
    expect((await call('DELETE', '/api/profiles/main')).status).toBe(200);
    expect((await call('GET', '/api/profiles')).body).toMatchObject({ profiles: [{ name: 'local' }], active_profile: null });
    expect((await call('GET', '/api/profiles/main')).body).toEqual({ detail: "Profile 'main' not found" });
    expect((await call('POST', '/api/profiles/main/activate')).status).toBe(404);

    expect((await call('POST', '/api/profiles/-bad', { llm: { model: 'm' } })).status).toBe(422);
    expect((await call('POST', '/api/profiles/ok', { llm: { model: 'm', drop_params: true } })).status).toBe(422);
    expect((await call('POST', '/api/profiles/ok', { llm: { model: 'm', auth_type: 'subscription' } })).status).toBe(422);
    expect((await call('POST', '/api/profiles/ok', {})).status).toBe(422);
  });

  it('keeps every tenant to its own settings, secrets and profiles', async () => {
    const other = await createTenant(ctx.server);
    await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'mine', api_key: 'sk-mine' } }, misc_settings_diff: { app_preferences: { language: 'de' } } });
    await call('PUT', '/api/settings/secrets', { name: 'MINE', value: 'v' });
    await call('POST', '/api/profiles/mine', { llm: { model: 'mine' } });

    const theirs = (await as(other.key, 'GET', '/api/settings')).body;
    expect(theirs.agent_settings.llm).toMatchObject({ model: 'gpt-5.5', api_key: null });
    expect(theirs.misc_settings.app_preferences.language).toBe('en');
    expect((await as(other.key, 'GET', '/api/settings/secrets')).body).toEqual({ secrets: [] });
    expect((await as(other.key, 'DELETE', '/api/settings/secrets/MINE')).status).toBe(404);
    expect((await as(other.key, 'GET', '/api/profiles')).body).toEqual({ profiles: [], active_profile: null });
    expect((await as(other.key, 'GET', '/api/profiles/mine')).status).toBe(404);
    expect((await as(other.key, 'POST', '/api/profiles/mine/activate')).status).toBe(404);
    await as(other.key, 'DELETE', '/api/profiles/mine');
    await as(other.key, 'PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'theirs' } } });

    expect((await call('GET', '/api/settings')).body.agent_settings.llm).toMatchObject({ model: 'mine', api_key: SECRET_MASK });
    expect((await call('GET', '/api/profiles')).body.profiles.map((p: { name: string }) => p.name)).toEqual(['mine']);
    expect((await call('GET', '/api/settings/secrets')).body.secrets.map((s: { name: string }) => s.name)).toEqual(['MINE']);
  });

  it('takes concurrent PATCHes in turn: none is lost', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `pref_${i}`);
    const results = await Promise.all(names.map((name) => call('PATCH', '/api/settings', { misc_settings_diff: { app_preferences: { [name]: true } } })));
    expect(results.map((r) => r.status)).toEqual(names.map(() => 200));
    const prefs = (await call('GET', '/api/settings')).body.misc_settings.app_preferences;
    for (const name of names) expect(prefs[name]).toBe(true);
  });

  it('describes the settings forms with the fields Berth supports', async () => {
    const agent = await call('GET', '/api/settings/agent-schema');
    expect(agent.status).toBe(200);
    expect(SettingsFormSchema.parse(agent.body)).toEqual(agent.body);
    expect(agent.body.model_name).toBe('AgentSettings');
    const fields = agent.body.sections.flatMap((s: { fields: { key: string }[] }) => s.fields);
    expect(fields.map((f: { key: string }) => f.key)).toEqual(
      expect.arrayContaining(['llm.model', 'llm.api_key', 'llm.base_url', 'llm.temperature', 'llm.timeout', 'tools']),
    );
    expect(fields.find((f: { key: string }) => f.key === 'llm.api_key')).toMatchObject({ secret: true, default: null, prominence: 'critical', section: 'llm', variant: 'openhands' });
    expect(fields.find((f: { key: string }) => f.key === 'llm.model')).toMatchObject({ value_type: 'string', default: 'gpt-5.5' });
    expect(fields.find((f: { key: string }) => f.key === 'llm.timeout')).toMatchObject({ value_type: 'integer', default: 300 });

    // every field names a real setting, so a form built from it PATCHes what the server accepts
    const settings = (await call('GET', '/api/settings')).body.agent_settings;
    for (const { key } of fields) {
      const value = key.split('.').reduce((o: any, part: string) => o?.[part], settings);
      expect({ key, present: value !== undefined }).toEqual({ key, present: true });
    }

    const conversation = await call('GET', '/api/settings/conversation-schema');
    expect(SettingsFormSchema.parse(conversation.body).model_name).toBe('ConversationSettings');
    expect(conversation.body.sections.map((s: { key: string }) => s.key)).toEqual(['general', 'verification']);
    expect(conversation.body.sections[1].fields[0]).toMatchObject({ key: 'confirmation_mode', value_type: 'boolean', default: false });
  });

  it('answers the valid empty shapes of the features Berth does not have yet', async () => {
    const expectations: [string, string, unknown, unknown][] = [
      ['POST', '/api/skills', { load_public: false, load_user: true, load_project: true, load_org: false, project_dir: 'workspace/project' }, { skills: [], sources: {} }],
      ['GET', '/api/plugins/installed', undefined, { plugins: [] }],
      ['GET', '/api/workspaces', undefined, { workspaces: [], workspaceParents: [] }],
      ['GET', '/api/canvas-extensions/installed', undefined, { canvas_extensions: [] }],
      ['GET', '/api/automation/sdk-version', undefined, { sdk_version: null }],
      ['GET', '/api/automation/health', undefined, { status: 'error', message: 'Automations are not available on this server' }],
      ['POST', '/api/automation/v1/telemetry/consent', { consent_granted: false, frontend_distinct_id: 'abc' }, { success: true }],
      ['GET', '/api/automation/v1?limit=50&offset=0', undefined, { automations: [], total: 0 }],
      ['GET', '/api/llm/providers', undefined, { providers: ['openai'] }],
      ['GET', '/api/llm/models?provider=openai', undefined, { models: [] }],
      ['GET', '/api/llm/models/verified', undefined, { models: {} }],
      ['GET', '/api/llm/subscription/openai/status', undefined, { vendor: 'openai', connected: false, account_email: null, expires_at: null }],
      ['GET', '/api/llm/subscription/openai/models', undefined, { vendor: 'openai', models: [] }],
    ];
    for (const [method, path, body, expected] of expectations) {
      const res = await call(method, path, body);
      expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 200, body: expected });
      expect((await api(ctx.server, method, path, { body })).status).toBe(401);
    }
    expect((await call('GET', '/api/automation/v1?limit=500')).status).toBe(422);
    expect((await call('POST', '/api/skills', { load_user: 'yes' })).status).toBe(422);
    expect((await call('POST', '/api/automation/v1/telemetry/consent', {})).status).toBe(422);
  });

  it('requires the key on every settings route', async () => {
    for (const [method, path] of [
      ['GET', '/api/settings'],
      ['PATCH', '/api/settings'],
      ['GET', '/api/settings/agent-schema'],
      ['GET', '/api/settings/secrets'],
      ['GET', '/api/settings/secrets/X'],
      ['PUT', '/api/settings/secrets'],
      ['GET', '/api/profiles'],
      ['POST', '/api/profiles/x/activate'],
    ]) {
      const res = await api(ctx.server, method, path, { key: 'wrong', body: method === 'GET' ? undefined : {} });
      expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 401, body: { detail: 'Unauthorized' } });
    }
  });
});

describe('settings on an open server (no key configured)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('embedded');
  });
  afterAll(async () => {
    await server.close();
  });

  it('gives plaintext to the open server, which acts for the default tenant', async () => {
    await api(server, 'PATCH', '/api/settings', { body: { agent_settings_diff: { llm: { api_key: 'sk-open' } } } });
    const plain = await api(server, 'GET', '/api/settings', { headers: { 'X-Expose-Secrets': 'plaintext' } });
    expect(plain.body.agent_settings.llm.api_key).toBe('sk-open');
    await api(server, 'PUT', '/api/settings/secrets', { body: { name: 'TOKEN', value: 'open-value' } });
    expect((await api(server, 'GET', '/api/settings/secrets/TOKEN')).body).toBe('open-value');
  });
});
