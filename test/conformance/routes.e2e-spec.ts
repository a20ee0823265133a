import { randomUUID } from 'node:crypto';
import { registeredRoutes, servesPath } from '../support/routes';
import { compareShapes, compareValues, describeDifference, Difference, judge, readAllowlist, writeNotServed } from './compare';
import { Answer, Call, send, startTargets, Target, Targets, waitStatus } from './targets';

/**
 * Every route of the reference's OpenAPI document that Berth serves, called on both servers the
 * same way — once as it should succeed, once with a typical client error — and compared: status,
 * content type, the shape of the JSON answer, and the headers clients read. The reference's routes
 * Berth does not serve are listed in differences.json ("not_served"), by router.
 */

jest.setTimeout(240_000);

/** What a case may use: the fixtures made the same way on each server. */
interface Fixture {
  t: Target;
  conversation: string;
  /** a conversation of its own for the calls that end one */
  doomed: string;
  eventId: string;
  file: string;
  dir: string;
  repo: string;
  sha: string;
  commandId: string;
  bashEventId: string;
  /** a bash command still running (sleep) */
  runningCommandId: string;
  /** an LLM provider connection */
  connectionId: string;
}

interface Case {
  valid: (f: Fixture) => Call;
  invalid: (f: Fixture) => Call;
  /** headers compared besides the content type */
  headers?: string[];
}

const q = encodeURIComponent;
const UNKNOWN = '6a1c1f7e-5d0b-4a4e-9d5c-0f0e0d0c0b0a';
const noKey = (call: Call): Call => ({ ...call, auth: false });
const get = (path: string): Call => ({ method: 'GET', path });
const post = (path: string, body?: unknown): Call => ({ method: 'POST', path, body });
const AGENT = (f: Fixture) => ({
  kind: 'Agent',
  llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-conformance', base_url: f.t.llmUrl, num_retries: 0 },
  tools: [{ name: 'terminal' }, { name: 'file_editor' }, { name: 'task_tracker' }],
});
const createBody = (f: Fixture, name: string, extra: Record<string, unknown> = {}) => ({
  agent: AGENT(f),
  workspace: { kind: 'LocalWorkspace', working_dir: f.t.workingDir(name) },
  ...extra,
});

/** The calls, by the reference's `METHOD path`. */
const CASES: Record<string, Case> = {
  // Server details
  'GET /': { valid: () => get('/'), invalid: () => get('/no-such-route') },
  'GET /alive': { valid: () => get('/alive'), invalid: () => ({ method: 'POST', path: '/alive' }) },
  'GET /health': { valid: () => get('/health'), invalid: () => ({ method: 'DELETE', path: '/health' }) },
  'GET /ready': { valid: () => get('/ready'), invalid: () => ({ method: 'POST', path: '/ready' }) },
  'GET /server_info': { valid: () => get('/server_info'), invalid: () => ({ method: 'PUT', path: '/server_info' }) },

  // Conversations
  'GET /api/conversations/search': { valid: () => get('/api/conversations/search?limit=5'), invalid: () => get('/api/conversations/search?limit=0') },
  'GET /api/conversations/count': { valid: () => get('/api/conversations/count'), invalid: () => get('/api/conversations/count?status=bogus') },
  'GET /api/conversations': { valid: (f) => get(`/api/conversations?ids=${f.conversation}&ids=${UNKNOWN}`), invalid: () => get('/api/conversations') },
  'POST /api/conversations': {
    valid: (f) => post('/api/conversations', createBody(f, 'created')),
    invalid: (f) => post('/api/conversations', { workspace: { kind: 'LocalWorkspace', working_dir: f.t.workingDir('x') } }),
  },
  'GET /api/conversations/{conversation_id}': { valid: (f) => get(`/api/conversations/${f.conversation}`), invalid: () => get(`/api/conversations/${UNKNOWN}`) },
  'PATCH /api/conversations/{conversation_id}': {
    valid: (f) => ({ method: 'PATCH', path: `/api/conversations/${f.conversation}`, body: { title: 'Renamed', tags: { team: 'conformance' } } }),
    invalid: (f) => ({ method: 'PATCH', path: `/api/conversations/${f.conversation}`, body: { title: '' } }),
  },
  'DELETE /api/conversations/{conversation_id}': {
    valid: (f) => ({ method: 'DELETE', path: `/api/conversations/${f.doomed}` }),
    invalid: () => ({ method: 'DELETE', path: `/api/conversations/${UNKNOWN}` }),
  },
  'POST /api/conversations/{conversation_id}/run': { valid: (f) => post(`/api/conversations/${f.conversation}/run`), invalid: () => post(`/api/conversations/${UNKNOWN}/run`) },
  'POST /api/conversations/{conversation_id}/pause': { valid: (f) => post(`/api/conversations/${f.conversation}/pause`), invalid: () => post(`/api/conversations/${UNKNOWN}/pause`) },
  'POST /api/conversations/{conversation_id}/interrupt': {
    valid: (f) => post(`/api/conversations/${f.conversation}/interrupt`),
    invalid: () => post(`/api/conversations/${UNKNOWN}/interrupt`),
  },
  'POST /api/conversations/{conversation_id}/secrets': {
    valid: (f) => post(`/api/conversations/${f.conversation}/secrets`, { secrets: { CONF_TOKEN: 'value' } }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/secrets`, { secrets: 'nope' }),
  },
  'POST /api/conversations/{conversation_id}/confirmation_policy': {
    valid: (f) => post(`/api/conversations/${f.conversation}/confirmation_policy`, { policy: { kind: 'NeverConfirm' } }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/confirmation_policy`, { policy: { kind: 'Bogus' } }),
  },
  'POST /api/conversations/{conversation_id}/security_analyzer': {
    valid: (f) => post(`/api/conversations/${f.conversation}/security_analyzer`, { security_analyzer: { kind: 'LLMSecurityAnalyzer' } }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/security_analyzer`, { security_analyzer: 'nope' }),
  },
  'GET /api/conversations/{conversation_id}/agent_final_response': {
    valid: (f) => get(`/api/conversations/${f.conversation}/agent_final_response`),
    invalid: () => get(`/api/conversations/${UNKNOWN}/agent_final_response`),
  },
  'POST /api/conversations/{conversation_id}/ask_agent': {
    valid: (f) => post(`/api/conversations/${f.conversation}/ask_agent`, { question: 'What did I say?' }),
    invalid: () => post(`/api/conversations/${UNKNOWN}/ask_agent`, { question: 'What did I say?' }),
  },
  'POST /api/conversations/{conversation_id}/switch_llm': {
    valid: (f) => post(`/api/conversations/${f.conversation}/switch_llm`, { llm: { model: 'openai/gpt-4o', api_key: 'sk-switched', base_url: f.t.llmUrl, num_retries: 0 } }),
    invalid: () => post(`/api/conversations/${UNKNOWN}/switch_llm`, { llm: { model: 'openai/gpt-4o' } }),
  },
  'POST /api/conversations/{conversation_id}/switch_profile': {
    valid: (f) => post(`/api/conversations/${f.conversation}/switch_profile`, { profile_name: 'conf-switch' }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/switch_profile`, { profile_name: 'no-such-profile' }),
  },
  // The fixture's agent has no condenser: both answer the refusal (409), and 404 for an unknown conversation.
  'POST /api/conversations/{conversation_id}/condense': {
    valid: (f) => post(`/api/conversations/${f.conversation}/condense`, {}),
    invalid: () => post(`/api/conversations/${UNKNOWN}/condense`, {}),
  },
  'POST /api/conversations/{conversation_id}/fork': {
    valid: (f) => post(`/api/conversations/${f.conversation}/fork`, { title: 'Forked', tags: { team: 'fork' } }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/fork`, { from_event_id: 'no-such-event' }),
  },
  'GET /api/conversations/{conversation_id}/workspace': {
    valid: (f) => noKey(get(`/api/conversations/${f.conversation}/workspace`)),
    invalid: () => get(`/api/conversations/${UNKNOWN}/workspace`),
  },
  'GET /api/conversations/{conversation_id}/workspace/{file_path}': {
    valid: (f) => get(`/api/conversations/${f.conversation}/workspace/page.html`),
    invalid: (f) => get(`/api/conversations/${f.conversation}/workspace/missing.txt`),
  },

  // Events
  'GET /api/conversations/{conversation_id}/events/search': {
    valid: (f) => get(`/api/conversations/${f.conversation}/events/search?limit=10`),
    invalid: () => get(`/api/conversations/${UNKNOWN}/events/search`),
  },
  'GET /api/conversations/{conversation_id}/events/count': {
    valid: (f) => get(`/api/conversations/${f.conversation}/events/count`),
    invalid: () => get(`/api/conversations/${UNKNOWN}/events/count`),
  },
  'GET /api/conversations/{conversation_id}/events/{event_id}': {
    valid: (f) => get(`/api/conversations/${f.conversation}/events/${f.eventId}`),
    invalid: (f) => get(`/api/conversations/${f.conversation}/events/${randomUUID()}`),
  },
  'GET /api/conversations/{conversation_id}/events': {
    valid: (f) => ({ method: 'GET', path: `/api/conversations/${f.conversation}/events`, body: [f.eventId, randomUUID()] }),
    invalid: (f) => ({ method: 'GET', path: `/api/conversations/${f.conversation}/events`, body: { ids: 'nope' } }),
  },
  'POST /api/conversations/{conversation_id}/events': {
    valid: (f) => post(`/api/conversations/${f.conversation}/events`, { role: 'user', content: [{ type: 'text', text: 'a second message' }], run: false }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/events`, { role: 'user', content: 'not a list' }),
  },
  'POST /api/conversations/{conversation_id}/events/respond_to_confirmation': {
    valid: (f) => post(`/api/conversations/${f.conversation}/events/respond_to_confirmation`, { accept: false }),
    invalid: (f) => post(`/api/conversations/${f.conversation}/events/respond_to_confirmation`, { accept: 'maybe' }),
  },

  // Files (Berth: the home sandbox's executor, through /api/file/*)
  'POST /api/file/upload': {
    valid: (f) => ({ method: 'POST', path: `/api/file/upload?path=${q(`${f.dir}/uploaded.txt`)}`, file: { name: 'uploaded.txt', content: 'uploaded\n' } }),
    invalid: () => ({ method: 'POST', path: `/api/file/upload?path=relative.txt`, file: { name: 'x.txt', content: 'x' } }),
  },
  'GET /api/file/download': {
    valid: (f) => get(`/api/file/download?path=${q(f.file)}`),
    invalid: (f) => get(`/api/file/download?path=${q(`${f.dir}/missing.txt`)}`),
    headers: ['content-disposition'],
  },
  'POST /api/file/create_directory': {
    valid: (f) => post(`/api/file/create_directory?path=${q(`${f.dir}/made`)}`),
    invalid: (f) => post(`/api/file/create_directory?path=${q(f.file)}`),
  },
  'GET /api/file/home': { valid: () => get('/api/file/home'), invalid: () => noKey(get('/api/file/home')) },
  'GET /api/file/search_subdirs': { valid: (f) => get(`/api/file/search_subdirs?path=${q(f.t.root)}`), invalid: () => get('/api/file/search_subdirs?path=relative') },
  'GET /api/file/download-trajectory/{conversation_id}': {
    valid: (f) => get(`/api/file/download-trajectory/${f.conversation}`),
    invalid: () => get(`/api/file/download-trajectory/${UNKNOWN}`),
    headers: ['content-disposition'],
  },
  'GET /api/file/archive': { valid: (f) => get(`/api/file/archive?path=${q(f.repo)}&format=tar.gz`), invalid: (f) => get(`/api/file/archive?path=${q(f.dir)}`) },

  // Bash
  'POST /api/bash/start_bash_command': {
    valid: (f) => post('/api/bash/start_bash_command', { command: 'echo started', cwd: f.dir }),
    invalid: () => post('/api/bash/start_bash_command', { cwd: '/' }),
  },
  'POST /api/bash/execute_bash_command': {
    valid: (f) => post('/api/bash/execute_bash_command', { command: 'echo executed', cwd: f.dir }),
    invalid: () => post('/api/bash/execute_bash_command', { command: 42 }),
  },
  'GET /api/bash/bash_events/search': {
    valid: (f) => get(`/api/bash/bash_events/search?command_id__eq=${f.commandId}&kind__eq=BashOutput`),
    invalid: () => get('/api/bash/bash_events/search?limit=0'),
  },
  'GET /api/bash/bash_events/{event_id}': { valid: (f) => get(`/api/bash/bash_events/${f.bashEventId}`), invalid: () => get(`/api/bash/bash_events/${'f'.repeat(32)}`) },
  'GET /api/bash/bash_events/': {
    valid: (f) => ({ method: 'GET', path: '/api/bash/bash_events/', body: [f.bashEventId, 'f'.repeat(32)] }),
    invalid: () => ({ method: 'GET', path: '/api/bash/bash_events/', body: 'nope' }),
  },
  'POST /api/bash/bash_commands/{command_id}/stop': {
    valid: (f) => post(`/api/bash/bash_commands/${f.runningCommandId}/stop`),
    invalid: () => post(`/api/bash/bash_commands/${'f'.repeat(32)}/stop`),
  },
  'DELETE /api/bash/bash_events': { valid: () => ({ method: 'DELETE', path: '/api/bash/bash_events' }), invalid: () => noKey({ method: 'DELETE', path: '/api/bash/bash_events' }) },

  // Git
  'GET /api/git/changes': { valid: (f) => get(`/api/git/changes?path=${q(f.repo)}`), invalid: () => get('/api/git/changes') },
  'GET /api/git/diff': { valid: (f) => get(`/api/git/diff?path=${q(`${f.repo}/a.txt`)}`), invalid: (f) => get(`/api/git/diff?path=${q(`${f.repo}/a.txt`)}&ref=HEAD&commit=abcd`) },
  'GET /api/git/commits': { valid: (f) => get(`/api/git/commits?path=${q(f.repo)}`), invalid: (f) => get(`/api/git/commits?path=${q(f.repo)}&limit=0`) },
  'GET /api/git/commits/{sha}/changes': { valid: (f) => get(`/api/git/commits/${f.sha}/changes?path=${q(f.repo)}`), invalid: (f) => get(`/api/git/commits/not-a-sha/changes?path=${q(f.repo)}`) },
  'GET /api/git/repositories/search': { valid: () => get('/api/git/repositories/search?provider=github'), invalid: () => get('/api/git/repositories/search') },

  // Settings
  'GET /api/settings/agent-schema': { valid: () => get('/api/settings/agent-schema'), invalid: () => noKey(get('/api/settings/agent-schema')) },
  'GET /api/settings/conversation-schema': { valid: () => get('/api/settings/conversation-schema'), invalid: () => noKey(get('/api/settings/conversation-schema')) },
  'GET /api/settings': { valid: () => get('/api/settings'), invalid: () => ({ method: 'GET', path: '/api/settings', headers: { 'X-Expose-Secrets': 'bogus' } }) },
  'PATCH /api/settings': {
    valid: () => ({ method: 'PATCH', path: '/api/settings', body: { conversation_settings_diff: { max_iterations: 77 } } }),
    invalid: () => ({ method: 'PATCH', path: '/api/settings', body: { conversation_settings_diff: { max_iterations: 'many' } } }),
  },
  'GET /api/settings/secrets': { valid: () => get('/api/settings/secrets'), invalid: () => noKey(get('/api/settings/secrets')) },
  'PUT /api/settings/secrets': {
    valid: () => ({ method: 'PUT', path: '/api/settings/secrets', body: { name: 'CONF_OTHER', value: 'v2', description: 'another' } }),
    invalid: () => ({ method: 'PUT', path: '/api/settings/secrets', body: { name: 'CONF_OTHER' } }),
  },
  'GET /api/settings/secrets/{name}': { valid: () => get('/api/settings/secrets/CONF_SECRET'), invalid: () => get('/api/settings/secrets/NO_SUCH_SECRET') },
  'DELETE /api/settings/secrets/{name}': {
    valid: () => ({ method: 'DELETE', path: '/api/settings/secrets/CONF_OTHER' }),
    invalid: () => ({ method: 'DELETE', path: '/api/settings/secrets/NO_SUCH_SECRET' }),
  },

  // LLM profiles
  'GET /api/profiles': { valid: () => get('/api/profiles'), invalid: () => noKey(get('/api/profiles')) },
  'GET /api/profiles/{name}': { valid: () => get('/api/profiles/conf-profile'), invalid: () => get('/api/profiles/no-such-profile') },
  'POST /api/profiles/{name}': {
    valid: () => post('/api/profiles/conf-second', { llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-second' }, include_secrets: true }),
    invalid: () => post('/api/profiles/conf-second', { llm: 'nope' }),
  },
  'POST /api/profiles/{name}/rename': {
    valid: () => post('/api/profiles/conf-second/rename', { new_name: 'conf-renamed' }),
    invalid: () => post('/api/profiles/no-such-profile/rename', { new_name: 'whatever' }),
  },
  'POST /api/profiles/{name}/activate': { valid: () => post('/api/profiles/conf-profile/activate'), invalid: () => post('/api/profiles/no-such-profile/activate') },
  'DELETE /api/profiles/{name}': { valid: () => ({ method: 'DELETE', path: '/api/profiles/conf-renamed' }), invalid: () => ({ method: 'DELETE', path: '/api/profiles/bad%20name!' }) },
  'POST /api/profiles/{name}/validate': {
    valid: () => post('/api/profiles/conf-profile/validate', { llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-x' } }),
    invalid: () => post('/api/profiles/conf-profile/validate', { llm: 'nope' }),
  },

  // Agent profiles
  'GET /api/agent-profiles': { valid: () => get('/api/agent-profiles'), invalid: () => noKey(get('/api/agent-profiles')) },
  'GET /api/agent-profiles/{name}': { valid: () => get('/api/agent-profiles/default'), invalid: () => get('/api/agent-profiles/no-such-profile') },
  'POST /api/agent-profiles/{name}': { valid: () => post('/api/agent-profiles/conf-agent', { name: 'conf-agent' }), invalid: () => post('/api/agent-profiles/conf-agent', 'nope') },
  'DELETE /api/agent-profiles/{name}': { valid: () => ({ method: 'DELETE', path: '/api/agent-profiles/conf-agent' }), invalid: () => noKey({ method: 'DELETE', path: '/api/agent-profiles/conf-agent' }) },
  'POST /api/agent-profiles/{name}/rename': { valid: () => post('/api/agent-profiles/conf-agent/rename', { new_name: 'conf-agent-2' }), invalid: () => post('/api/agent-profiles/no-such/rename', {}) },
  'POST /api/agent-profiles/{profile_id}/activate': { valid: () => post('/api/agent-profiles/default/activate'), invalid: () => post(`/api/agent-profiles/${UNKNOWN}/activate`) },
  'POST /api/agent-profiles/{name}/materialize': { valid: () => post('/api/agent-profiles/default/materialize', {}), invalid: () => post('/api/agent-profiles/no-such/materialize', {}) },

  // LLM catalog
  'GET /api/llm/providers': { valid: () => get('/api/llm/providers'), invalid: () => noKey(get('/api/llm/providers')) },
  'GET /api/llm/models': { valid: () => get('/api/llm/models?provider=openai'), invalid: () => noKey(get('/api/llm/models')) },
  'GET /api/llm/models/verified': { valid: () => get('/api/llm/models/verified'), invalid: () => noKey(get('/api/llm/models/verified')) },
  'GET /api/llm/subscription/openai/status': { valid: () => get('/api/llm/subscription/openai/status'), invalid: () => noKey(get('/api/llm/subscription/openai/status')) },
  'GET /api/llm/subscription/openai/models': { valid: () => get('/api/llm/subscription/openai/models'), invalid: () => noKey(get('/api/llm/subscription/openai/models')) },
  'GET /api/llm/provider-connections': { valid: () => get('/api/llm/provider-connections'), invalid: () => noKey(get('/api/llm/provider-connections')) },
  'POST /api/llm/provider-connections': {
    valid: () => post('/api/llm/provider-connections', { display_name: 'Conformance two', provider: 'custom', api_key: 'sk-two', base_url: 'http://127.0.0.1:9/v1' }),
    invalid: () => post('/api/llm/provider-connections', { display_name: 42 }),
  },
  'PATCH /api/llm/provider-connections/{connection_id}': {
    valid: (f) => ({ method: 'PATCH', path: `/api/llm/provider-connections/${f.connectionId}`, body: { display_name: 'Conformance renamed' } }),
    invalid: (f) => ({ method: 'PATCH', path: `/api/llm/provider-connections/${f.connectionId}`, body: { display_name: 42 } }),
  },
  'DELETE /api/llm/provider-connections/{connection_id}': {
    valid: (f) => ({ method: 'DELETE', path: `/api/llm/provider-connections/${f.connectionId}` }),
    invalid: () => ({ method: 'DELETE', path: `/api/llm/provider-connections/${UNKNOWN}` }),
  },

  // The GUI's catalogs
  'POST /api/skills': {
    valid: () => post('/api/skills', { load_public: false, load_user: false, load_project: false, load_org: false }),
    invalid: () => post('/api/skills', { load_public: 'sometimes' }),
  },
  'POST /api/hooks': { valid: (f) => post('/api/hooks', { project_dir: f.dir }), invalid: () => post('/api/hooks', { project_dir: 42 }) },
  'GET /api/plugins/installed': { valid: () => get('/api/plugins/installed'), invalid: () => noKey(get('/api/plugins/installed')) },
  'GET /api/workspaces': { valid: () => get('/api/workspaces'), invalid: () => noKey(get('/api/workspaces')) },
  'GET /api/canvas-extensions/installed': { valid: () => get('/api/canvas-extensions/installed'), invalid: () => noKey(get('/api/canvas-extensions/installed')) },
  'GET /api/vscode/url': { valid: () => get('/api/vscode/url'), invalid: () => noKey(get('/api/vscode/url')) },
  'GET /api/vscode/status': { valid: () => get('/api/vscode/status'), invalid: () => noKey(get('/api/vscode/status')) },
  'GET /api/tools/': { valid: () => get('/api/tools/'), invalid: () => noKey(get('/api/tools/')) },
  'GET /api/tools/catalog': { valid: () => get('/api/tools/catalog'), invalid: () => noKey(get('/api/tools/catalog')) },

  // Workspace session cookie
  'POST /api/auth/workspace-session': { valid: () => post('/api/auth/workspace-session'), invalid: () => noKey(post('/api/auth/workspace-session')), headers: ['set-cookie'] },
  'DELETE /api/auth/workspace-session': {
    valid: () => ({ method: 'DELETE', path: '/api/auth/workspace-session' }),
    invalid: () => ({ method: 'DELETE', path: '/api/auth/workspace-session', headers: { 'X-Session-API-Key': 'wrong-key' } }),
    headers: ['set-cookie'],
  },
};

// Conversation runtime routes (1.58): the conversation's own runtime, and its workspace routes.
CASES['GET /api/conversations/{conversation_id}/runtime'] = { valid: (f) => get(`/api/conversations/${f.conversation}/runtime`), invalid: () => get(`/api/conversations/${UNKNOWN}/runtime`) };
CASES['POST /api/conversations/{conversation_id}/runtime/reprovision'] = {
  valid: (f) => post(`/api/conversations/${f.conversation}/runtime/reprovision`),
  invalid: () => post(`/api/conversations/${UNKNOWN}/runtime/reprovision`),
};
for (const [route, c] of Object.entries({ ...CASES })) {
  const m = /^(\w+) \/api\/(bash|file|git|vscode)\/(.*)$/.exec(route);
  if (!m) continue;
  const scoped = (make: (f: Fixture) => Call) => (f: Fixture) => {
    const call = make(f);
    return { ...call, path: call.path.replace(/^\/api\//, `/api/conversations/${f.conversation}/`) };
  };
  CASES[`${m[1]} /api/conversations/{runtime_conversation_id}/${m[2]}/${m[3]}`] = { valid: scoped(c.valid), invalid: scoped(c.invalid), headers: c.headers };
}
// The per-conversation copy of a route the reference has only at the top level is no route of it.
delete CASES['GET /api/conversations/{runtime_conversation_id}/git/repositories/search'];
delete CASES['GET /api/conversations/{runtime_conversation_id}/file/home'];
delete CASES['GET /api/conversations/{runtime_conversation_id}/file/search_subdirs'];

/** The route patterns of an OpenAPI document, as `METHOD path` with the tag of its router. */
function openapiRoutes(doc: { paths: Record<string, Record<string, { tags?: string[] }>> }): { route: string; method: string; path: string; tag: string }[] {
  const out = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) out.push({ route: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, tag: op.tags?.[0] ?? path.split('/').at(-2) ?? 'untagged' });
  }
  return out;
}

/** A set-cookie header without its value (the key) and Max-Age; its attributes compared as a set, in any case. */
const cookieShape = (v: string | undefined) => {
  if (!v) return v;
  const [pair, ...attributes] = v.split(/;\s*/);
  const name = pair.split('=')[0];
  const attrs = attributes.map((a) => a.replace(/^max-age=\d+$/i, 'Max-Age=<n>')).map((a) => a.toLowerCase()).sort();
  return [`${name}=<value>`, ...attrs].join('; ');
};
const mediaType = (a: Answer) => a.headers['content-type']?.split(';')[0].trim() ?? null;

function compareAnswers(scenario: string, ref: Answer, berth: Answer, headers: string[] = []): Difference[] {
  const out: Difference[] = [];
  out.push(...compareValues(scenario, 'status', 'status', ref.status, berth.status));
  // A different status explains a different body and headers: the rest is compared when the statuses agree.
  if (ref.status !== berth.status) return out;
  out.push(...compareValues(scenario, 'header', 'content-type', mediaType(ref), mediaType(berth)));
  for (const name of headers) {
    // Values that name ids (a trajectory's file name is the conversation's hex id) compare without them.
    const norm = name === 'set-cookie' ? cookieShape : (v: string | undefined) => v?.replace(/[0-9a-f]{32}/g, '<hex id>');
    out.push(...compareValues(scenario, 'header', name, norm(ref.headers[name]) ?? null, norm(berth.headers[name]) ?? null));
  }
  if (ref.json !== undefined && berth.json !== undefined) out.push(...compareShapes(scenario, ref.json, berth.json));
  return out;
}

async function makeFixture(t: Target): Promise<Fixture> {
  const expectOk = (a: Answer, what: string) => {
    if (a.status >= 300) throw new Error(`${t.name}: ${what} answered ${a.status}: ${a.text.slice(0, 500)}`);
    return a;
  };
  const dir = `${t.root}/conformance`;
  const repo = `${t.root}/conformance-repo`;
  const made = expectOk(
    await send(t, post('/api/bash/execute_bash_command', {
      command:
        `mkdir -p ${dir} ${repo} && cd ${repo} && git init -q && echo one > a.txt && git add a.txt && ` +
        `git -c user.name=Conformance -c user.email=c@example.com commit -qm first && echo two >> a.txt && git rev-parse HEAD`,
      cwd: t.root,
    })),
    'preparing the folders',
  );
  const sha = String((made.json as { stdout: string }).stdout).trim();
  expectOk(await send(t, { method: 'POST', path: `/api/file/upload?path=${q(`${dir}/hello.txt`)}`, file: { name: 'hello.txt', content: 'hello\n' } }), 'the upload');
  const started = expectOk(await send(t, post('/api/bash/start_bash_command', { command: 'echo fixture', cwd: dir })), 'a bash command');
  const commandId = (started.json as { id: string }).id;
  let bashEventId = '';
  for (let i = 0; i < 100 && !bashEventId; i++) {
    const found = await send(t, get(`/api/bash/bash_events/search?command_id__eq=${commandId}&kind__eq=BashOutput`));
    const items = (found.json as { items: { id: string; exit_code: number | null }[] }).items;
    if (items.some((e) => e.exit_code !== null)) bashEventId = items[0].id;
    else await new Promise((r) => setTimeout(r, 100));
  }
  const sleeping = expectOk(await send(t, post('/api/bash/start_bash_command', { command: 'sleep 30', cwd: dir, timeout: 40 })), 'a long bash command');
  const runningCommandId = (sleeping.json as { id: string }).id;
  const f = { t, dir, repo, sha, commandId, bashEventId, runningCommandId, file: `${dir}/hello.txt` } as Fixture;
  const conv = expectOk(await send(t, post('/api/conversations', createBody(f, 'fixture'))), 'the conversation');
  f.conversation = (conv.json as { id: string }).id;
  const info = conv.json as { workspace: { working_dir: string } };
  expectOk(await send(t, post(`/api/conversations/${f.conversation}/events`, { role: 'user', content: [{ type: 'text', text: 'hello there' }], run: false })), 'a message');
  // The reference titles a conversation by asking its LLM in the background: wait for the title, so the state compared is settled.
  for (let i = 0; i < 100; i++) {
    const { title } = (await send(t, get(`/api/conversations/${f.conversation}`))).json as { title: string | null };
    if (title) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const events = (await send(t, get(`/api/conversations/${f.conversation}/events/search?limit=100`))).json as { items: { id: string; kind: string }[] };
  f.eventId = events.items.find((e) => e.kind === 'MessageEvent')!.id;
  // A page in the conversation's working dir, for the workspace route.
  expectOk(await send(t, { method: 'POST', path: `/api/file/upload?path=${q(`${info.workspace.working_dir}/page.html`)}`, file: { name: 'page.html', content: '<p>hi</p>' } }), 'a page');
  const doomed = expectOk(await send(t, post('/api/conversations', createBody(f, 'doomed'))), 'a second conversation');
  f.doomed = (doomed.json as { id: string }).id;
  expectOk(await send(t, { method: 'PUT', path: '/api/settings/secrets', body: { name: 'CONF_SECRET', value: 'shh', description: 'a secret' } }), 'a secret');
  const connection = await send(t, post('/api/llm/provider-connections', { display_name: 'Conformance', provider: 'custom', api_key: 'sk-conn', base_url: 'http://127.0.0.1:9/v1' }));
  f.connectionId = connection.status < 300 ? (connection.json as { id: string }).id : UNKNOWN;
  expectOk(await send(t, post('/api/profiles/conf-profile', { llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-profile' }, include_secrets: true })), 'a profile');
  // The profile switch_profile switches to: the scripted LLM, so later runs still get answers.
  expectOk(await send(t, post('/api/profiles/conf-switch', { llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-switch', base_url: t.llmUrl }, include_secrets: true })), 'a profile to switch to');
  return f;
}

describe('conformance: the routes of the reference OpenAPI document', () => {
  let targets: Targets;
  let refDoc: any;
  let served: { route: string; method: string; path: string; tag: string }[] = [];
  let notServed: Record<string, string[]> = {};
  let undocumented: string[] = [];
  const found: Difference[] = [];

  beforeAll(async () => {
    targets = await startTargets();
    refDoc = (await send(targets.reference, get('/openapi.json'))).json;
    const berthRoutes = registeredRoutes(targets.berth.berth!);
    const all = openapiRoutes(refDoc);
    const sample = (path: string) => path.replace(/\{[^}]+\}/g, 'x1');
    // The per-conversation workspace routes last: in Berth a conversation under the home root shares the home sandbox (and its bash log).
    served = all.filter((r) => servesPath(berthRoutes, r.method, sample(r.path))).sort((a, b) => Number(a.path.includes('{runtime_conversation_id}')) - Number(b.path.includes('{runtime_conversation_id}')));
    // Berth's own document: which of the served routes it names (its catch-all workspace routes stand for theirs).
    const own = openapiRoutes((await send(targets.berth, get('/openapi.json'))).json as never).map((r) => ({ method: r.method, path: r.path.replace(/\{[^}]+\}/g, (m) => (m === '{path}' ? '*' : ':p')) }));
    undocumented = served.filter((r) => !servesPath(own, r.method, sample(r.path))).map((r) => r.route);
    notServed = {};
    for (const r of all.filter((x) => !served.includes(x))) (notServed[r.tag] ??= []).push(r.route);
  }, 180_000);

  afterAll(async () => {
    await targets?.stop();
  });

  it("lists the reference's routes Berth does not serve, by router, in differences.json", () => {
    const lines = Object.entries(notServed).map(([tag, routes]) => `  ${tag} (${routes.length}):\n${routes.map((r) => `    ${r}`).join('\n')}`);
    console.log(
      `Reference routes: ${served.length + Object.values(notServed).flat().length}; served by Berth: ${served.length}` +
        ` (${undocumented.length} of them missing from Berth's /openapi.json: ${undocumented.join(', ') || 'none'}); not served:\n${lines.join('\n')}`,
    );
    if (process.env.CONFORMANCE_UPDATE === '1') writeNotServed(notServed);
    expect(readAllowlist().not_served).toEqual(notServed);
  });

  it('has a valid and a 4xx call for every served route, and none for a route the reference lacks', () => {
    expect(served.filter((r) => !CASES[r.route]).map((r) => r.route)).toEqual([]);
    const known = new Set(openapiRoutes(refDoc).map((r) => r.route));
    expect(Object.keys(CASES).filter((k) => !known.has(k))).toEqual([]);
    // Berth's own document names what it serves, too.
    expect(served.length).toBeGreaterThan(60);
  });

  it('answers every served route as the reference does, or as differences.json says', async () => {
    const fixtures = await Promise.all([makeFixture(targets.reference), makeFixture(targets.berth)]);
    const [ref, berth] = fixtures;
    for (const { route } of served) {
      const c = CASES[route];
      if (!c) continue;
      for (const which of ['valid', '4xx'] as const) {
        const make = which === 'valid' ? c.valid : c.invalid;
        const [a, b] = await Promise.all([send(ref.t, make(ref)), send(berth.t, make(berth))]);
        found.push(...compareAnswers(`${route} (${which})`, a, b, c.headers));
        if (which === '4xx' && (a.status < 400 || a.status >= 500)) found.push({ scenario: `${route} (4xx)`, check: 'status', path: 'reference', detail: `the reference answered ${a.status}: the case is no client error` });
      }
      // Calls that start runs: let them settle before the next call compares state.
      if (route.endsWith('/run')) await Promise.all([waitStatus(ref.t, ref.conversation, ['finished', 'error', 'idle', 'paused']), waitStatus(berth.t, berth.conversation, ['finished', 'error', 'idle', 'paused'])]);
    }
  });

  it('sends the headers clients read: CORS on preflight and on answers, auth by X-Session-API-Key', async () => {
    const preflight = (origin: string, path = '/api/conversations'): Call => ({
      method: 'OPTIONS',
      path,
      auth: false,
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-session-api-key,content-type' },
    });
    const cors = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age', 'access-control-expose-headers'];
    const scenarios: [string, Call, string[]][] = [
      ['CORS preflight from localhost', preflight('http://localhost:3000'), cors],
      ['CORS preflight from an origin not allowed', preflight('https://elsewhere.example'), cors],
      ['CORS preflight of the workspace-session route from any origin', preflight('https://canvas.example', '/api/auth/workspace-session'), cors],
      ['CORS on an answer to localhost', { method: 'GET', path: '/api/conversations/count', headers: { Origin: 'http://localhost:3000' } }, cors],
      ['auth: no key', { method: 'GET', path: '/api/conversations/count', auth: false }, ['www-authenticate']],
      ['auth: wrong key', { method: 'GET', path: '/api/conversations/count', auth: false, headers: { 'X-Session-API-Key': 'wrong' } }, ['www-authenticate']],
      ['auth: header name in lower case', { method: 'GET', path: '/api/conversations/count', auth: false, headers: { 'x-session-api-key': targets.reference.key } }, []],
      ['auth: key in the query string (not accepted on REST)', { method: 'GET', path: `/api/conversations/count?session_api_key=${targets.reference.key}`, auth: false }, []],
      ['auth: Authorization Bearer (not accepted on /api)', { method: 'GET', path: '/api/conversations/count', auth: false, headers: { Authorization: `Bearer ${targets.reference.key}` } }, []],
      ['auth: a public route with a wrong key', { method: 'GET', path: '/health', auth: false, headers: { 'X-Session-API-Key': 'wrong' } }, []],
    ];
    const norm = (name: string, v: string | undefined) => {
      if (v === undefined) return null;
      if (/allow-(methods|headers)|expose-headers/.test(name)) return v === '*' ? '*' : v.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean).sort().join(', ');
      return v;
    };
    for (const [scenario, call, names] of scenarios) {
      const [a, b] = await Promise.all([send(targets.reference, call), send(targets.berth, call)]);
      found.push(...compareValues(scenario, 'status', 'status', a.status, b.status));
      for (const name of names) found.push(...compareValues(scenario, 'header', name, norm(name, a.headers[name]), norm(name, b.headers[name])));
      if (a.status === b.status && a.json !== undefined && b.json !== undefined) found.push(...compareShapes(scenario, a.json, b.json));
    }
  });

  it('finds no difference that differences.json does not list, and every one it lists', () => {
    const verdict = judge('routes', found);
    if (process.env.CONFORMANCE_VERBOSE === '1') console.log(found.map(describeDifference).join('\n'));
    console.log(`routes: ${found.length} differences found, ${verdict.allowed} allowed by differences.json`);
    expect({ unexpected: verdict.unexpected, stale: verdict.stale }).toEqual({ unexpected: [], stale: [] });
  });
});
