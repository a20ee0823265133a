import { Database } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { api, createTenant, startRequest, TestServer, userMessage } from './server';

/** Everything one tenant owns, made through the API, with markers that must never reach another tenant. */
export interface TenantWorld {
  tenantId: string;
  key: string;
  homeId: string;
  homeRoot: string;
  sandboxId: string;
  conversationId: string;
  conversationSandboxId: string;
  workingDir: string;
  eventId: string;
  commandId: string;
  secretName: string;
  profileName: string;
  agentProfileName: string;
  agentProfileId: string;
  connectionId: string;
  /** strings of this world that another tenant's answers must not contain */
  markers: string[];
}

/**
 * A tenant with real objects of every kind: its home (with a file), a sandbox of the runtime API
 * (with a file), a conversation with a message and a sandbox of its own, a bash command, settings,
 * a secret, an LLM profile, an agent profile and an LLM provider connection.
 */
export async function makeTenantWorld(server: TestServer): Promise<TenantWorld> {
  const { tenantId, key } = await createTenant(server);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await api(server, method, path, { key, body });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const tag = randomUUID().slice(0, 8);
  const homeRoot = (await call('GET', '/api/file/home')).home as string;
  await call('POST', '/api/bash/execute_bash_command', { cwd: homeRoot, command: `echo home-secret-${tag} > a_file` });
  const home = await server.app.get(Database).prisma.sandbox.findFirstOrThrow({ where: { tenantId, kind: 'home' } });
  const sandboxId = (await call('POST', '/api/sandboxes', {})).id as string;
  await call('POST', `/sandboxes/${sandboxId}/api/bash/execute_bash_command`, { command: `echo sandbox-secret-${tag} > a_file` });
  const workingDir = `/srv/a-${tag}`;
  const conversationId = (await call('POST', '/api/conversations', startRequest({ workspace: { kind: 'LocalWorkspace', working_dir: workingDir } }))).id;
  await call('PATCH', `/api/conversations/${conversationId}`, { title: `title-${tag}` });
  await call('POST', `/api/conversations/${conversationId}/events`, userMessage(`message-${tag}`));
  const eventId = (await call('GET', `/api/conversations/${conversationId}/events/search?kind=MessageEvent`)).items[0].id as string;
  await call('POST', '/api/bash/execute_bash_command', { cwd: workingDir, command: `echo conversation-secret-${tag} > a_file` });
  const conversationSandboxId = (await call('GET', `/api/conversations/${conversationId}`)).sandbox_id as string;
  const commandId = (await call('POST', '/api/bash/start_bash_command', { cwd: homeRoot, command: `echo command-${tag}` })).id as string;
  await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { model: `settings-model-${tag}` } } });
  const secretName = `SECRET_${tag.toUpperCase()}`;
  await call('PUT', '/api/settings/secrets', { name: secretName, value: `secret-value-${tag}` });
  const profileName = `profile-${tag}`;
  await call('POST', `/api/profiles/${profileName}`, { llm: { model: `profile-model-${tag}` }, include_secrets: false });
  const agentProfileName = `agent-${tag}`;
  await call('POST', `/api/agent-profiles/${agentProfileName}`, { llm_profile_ref: profileName });
  const agentProfileId = (await call('GET', `/api/agent-profiles/${agentProfileName}`)).profile.id as string;
  const connectionId = (await call('POST', '/api/llm/provider-connections', { display_name: `connection-${tag}`, api_key: `sk-connection-${tag}` })).id as string;
  const ids = [home.id, sandboxId, conversationId, conversationSandboxId, eventId, commandId, agentProfileId, connectionId];
  return {
    tenantId,
    key,
    homeId: home.id,
    homeRoot,
    sandboxId,
    conversationId,
    conversationSandboxId,
    workingDir,
    eventId,
    commandId,
    secretName,
    profileName,
    agentProfileName,
    agentProfileId,
    connectionId,
    markers: [...ids, ...ids.map((id) => id.replace(/-/g, '')), tag, homeRoot, workingDir],
  };
}

/**
 * Fails naming the marker when an answer to another tenant shows anything of `world`, beyond the ids
 * the caller itself `named` (a not-found answer repeats the id asked for).
 */
export function expectNothingOf(world: TenantWorld, what: string, text: string, named: string[] = []): void {
  let shown = text.toLowerCase();
  for (const id of named) shown = shown.split(id.toLowerCase()).join('').split(id.replace(/-/g, '').toLowerCase()).join('');
  for (const marker of world.markers) {
    if (shown.includes(marker.toLowerCase())) throw new Error(`${what} shows ${marker} of another tenant: ${text.slice(0, 500)}`);
  }
}
