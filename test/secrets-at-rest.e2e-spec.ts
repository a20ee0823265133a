import { Database } from '@berth/persistence';
import { AGENT, startRequest, useServer } from './support/server';

const KEY = 'at-rest-key';

/**
 * Every place a client hands Berth a secret — an agent's LLM key, conversation secrets, settings,
 * the secrets store, LLM profiles, a sandbox's variables — and then every row of every table read
 * back as text: no secret value appears in the database, only ciphertext.
 */
describe('secrets at rest (postgres)', () => {
  const ctx = useServer('postgres', { OH_SESSION_API_KEYS_0: KEY }, KEY);
  const call = ctx.call;

  it('stores no secret value in clear in any table', async () => {
    const marker = (what: string) => `plain-${what}-3f9c2e`;
    const created = await call(
      'POST',
      '/api/conversations',
      startRequest({ agent: { ...AGENT, llm: { ...AGENT.llm, api_key: marker('agent-llm') } }, secrets: { GITHUB_TOKEN: marker('conversation-secret') } }),
    );
    expect(created.status).toBe(201);
    const later = await call('POST', `/api/conversations/${created.body.id}/secrets`, {
      secrets: { B: { value: marker('added-secret'), description: 'b' }, C: { kind: 'LookupSecret', url: 'https://vault.example/c', headers: { Authorization: marker('lookup-header') } } },
    });
    expect(later.status).toBe(200);
    expect((await call('PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'openai/stub', api_key: marker('settings-llm') } } })).status).toBe(200);
    expect((await call('PUT', '/api/settings/secrets', { name: 'STORE_TOKEN', value: marker('store-secret') })).status).toBeLessThan(300);
    expect((await call('POST', '/api/profiles/p', { llm: { model: 'openai/gpt-4o', api_key: marker('profile-llm') } })).status).toBeLessThan(300);
    const sandbox = await call('POST', '/api/sandboxes', { env: { DB_PASS: marker('sandbox-env') } });
    expect(sandbox.status).toBe(201);
    // The sandbox still gets its variable in clear, where it belongs.
    const echoed = await call('POST', `/sandboxes/${sandbox.body.id}/api/bash/execute_bash_command`, { command: 'echo "$DB_PASS"' });
    expect(echoed.body.stdout).toContain(marker('sandbox-env'));

    const prisma = ctx.server.app.get(Database).prisma;
    const tables = await prisma.$queryRaw<{ name: string }[]>`
      SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`;
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['conversations', 'sandboxes', 'tenant_settings', 'tenant_secrets', 'llm_profiles', 'events']));
    let dump = '';
    for (const { name } of tables) {
      const rows = await prisma.$queryRawUnsafe<{ row: string }[]>(`SELECT row_to_json(t)::text AS row FROM "${name}" t`);
      dump += rows.map((r) => r.row).join('\n');
    }
    expect(dump).toContain(created.body.id);
    for (const what of ['agent-llm', 'conversation-secret', 'added-secret', 'lookup-header', 'settings-llm', 'store-secret', 'profile-llm', 'sandbox-env']) {
      expect({ what, found: dump.includes(marker(what)) }).toEqual({ what, found: false });
    }
  });
});
