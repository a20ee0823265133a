import { SecretVault } from '@berth/crypto';
import { SECRET_STORES } from '@berth/persistence';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { Exit, eventually, freePort, run, waitFor } from './support/processes';
import { AGENT, api, privateDatabase, startRequest } from './support/server';

/** The default tenant's API key; never the secret key once OH_SECRET_KEY is set. */
const SESSION_KEY = 'rotation-session-key-a';
const KEY_B = 'rotation-secret-key-b';
const KEY_C = 'rotation-secret-key-c';
const PLAIN = { header: { 'X-Expose-Secrets': 'plaintext' } };
/** A conversation whose agent is the stored settings' (their LLM key included). */
const FROM_SETTINGS = { agent_settings: {}, workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' } };

interface Gateway {
  url: string;
  output(): string;
  stop(): Promise<Exit>;
}

/**
 * Stores secrets under one key (the session key, as OH_SECRET_KEY is unset), then restarts the
 * gateway — a real process on its own PostgreSQL database — under other keys: B with the old key
 * as previous (readable, re-keyed in the background by two replicas at once), B alone (readable),
 * C alone (409 naming the secret on each path that reads one, and a warning at start).
 */
describe('secret key rotation (postgres, gateway processes)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-rotation-'));
  let database: { url: string; drop(): Promise<void> };
  const running: Gateway[] = [];

  async function gateway(env: Record<string, string>): Promise<Gateway> {
    const port = await freePort();
    const proc = run('dist/apps/gateway/src/main.js', ['--host', '127.0.0.1', '--port', String(port)], {
      DATABASE_URL: database.url,
      BERTH_DATA_DIR: dataDir,
      BERTH_ROLE: 'gateway',
      BERTH_WARM_POOL_SIZE: '0',
      OH_SESSION_API_KEYS_0: SESSION_KEY,
      LOG_LEVEL: 'info',
      ...env,
    });
    const url = `http://127.0.0.1:${port}`;
    const g: Gateway = {
      url,
      output: proc.output,
      stop: async () => {
        if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
        return proc.exited;
      },
    };
    running.push(g);
    await waitFor(`${url}/ready`, 200, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${proc.output()}`);
    });
    return g;
  }

  const call = (g: Gateway, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    api(g, method, path, { body, key: SESSION_KEY, headers });

  /** Every sealed column's stored value, as the pass reads them. */
  async function storedValues(): Promise<unknown[]> {
    const client = new Client({ connectionString: database.url });
    await client.connect();
    try {
      const values: unknown[] = [];
      for (const s of SECRET_STORES) {
        const { rows } = await client.query<{ v: string }>(`SELECT "${s.column}"::text AS v FROM "${s.table}"`);
        values.push(...rows.map((r) => (s.type === 'text' ? r.v : JSON.parse(r.v))));
      }
      return values;
    } finally {
      await client.end();
    }
  }

  /** How the stored tokens stand against `vault`: opened by its current key, by a previous one, by none. */
  async function tokensUnder(vault: SecretVault): Promise<{ current: number; rekeyed: number; unreadable: number }> {
    const all = { current: 0, rekeyed: 0, unreadable: 0 };
    const counter = new SecretVault('count-every-token', dataDir, []);
    for (const value of await storedValues()) {
      const found = vault.resealTokens(value);
      const total = counter.resealTokens(value).unreadable; // no token opens with the counter's key
      all.rekeyed += found.rekeyed;
      all.unreadable += found.unreadable;
      all.current += total - found.rekeyed - found.unreadable;
    }
    return all;
  }

  const rekeyedIn = (output: string) => Number(/re-encrypted (\d+) stored secrets/.exec(output)?.[1] ?? 0);

  let sealedTokens: number;
  let agentProfileId: string;

  beforeAll(async () => {
    database = await privateDatabase('rotation');
  });

  afterAll(async () => {
    await Promise.all(running.map((g) => g.stop()));
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('with OH_SECRET_KEY unset, says the session key is the secret key, and stores secrets under it', async () => {
    const a = await gateway({});
    expect(a.output()).toContain('OH_SECRET_KEY is not set: stored secrets are encrypted with the first session API key (OH_SESSION_API_KEYS)');
    expect(a.output()).not.toContain(SESSION_KEY);
    expect((await call(a, 'PUT', '/api/settings/secrets', { name: 'GITHUB_TOKEN', value: 'ghp-rotation' })).status).toBeLessThan(300);
    expect((await call(a, 'PATCH', '/api/settings', { agent_settings_diff: { llm: { model: 'openai/stub', api_key: 'sk-settings' } } })).status).toBe(200);
    expect((await call(a, 'POST', '/api/profiles/p', { llm: { model: 'openai/gpt-4o', api_key: 'sk-profile' } })).status).toBeLessThan(300);
    // An agent profile holds no key of its own: it names the LLM profile's.
    expect((await call(a, 'POST', '/api/agent-profiles/ap', { agent_kind: 'openhands', llm_profile_ref: 'p' })).status).toBe(201);
    agentProfileId = (await call(a, 'GET', '/api/agent-profiles/ap')).body.profile.id;
    const created = await call(a, 'POST', '/api/conversations', startRequest({ agent: { ...AGENT, llm: { ...AGENT.llm, api_key: 'sk-conversation' } }, secrets: { DEPLOY: 'deploy-secret' } }));
    expect(created.status).toBe(201);
    await a.stop();

    const stored = await tokensUnder(new SecretVault(KEY_B, dataDir, [SESSION_KEY]));
    // secrets store, settings key, profile key, conversation LLM key and secret
    expect(stored).toEqual({ current: 0, rekeyed: 5, unreadable: 0 });
    sealedTokens = stored.rekeyed;
  });

  it('under a new OH_SECRET_KEY with the old key previous: all readable, and two replicas re-key every secret exactly once', async () => {
    const env = { OH_SECRET_KEY: KEY_B, OH_PREVIOUS_SECRET_KEYS: JSON.stringify([SESSION_KEY]) };
    const [b1, b2] = await Promise.all([gateway(env), gateway(env)]);
    const done = (g: Gateway) => /every stored secret opens with the current key/.test(g.output());
    expect(await eventually(() => done(b1) && done(b2), 30_000)).toBe(true);
    expect(rekeyedIn(b1.output()) + rekeyedIn(b2.output())).toBe(sealedTokens);
    for (const g of [b1, b2]) expect(g.output()).not.toContain('OH_SECRET_KEY is not set');

    expect((await call(b1, 'GET', '/api/settings/secrets/GITHUB_TOKEN')).body).toBe('ghp-rotation');
    expect((await call(b2, 'GET', '/api/settings', undefined, PLAIN.header)).body.agent_settings.llm.api_key).toBe('sk-settings');
    expect((await call(b1, 'GET', '/api/profiles/p', undefined, PLAIN.header)).body.config.api_key).toBe('sk-profile');
    await Promise.all([b1.stop(), b2.stop()]);

    // Every stored token now opens with B alone.
    expect(await tokensUnder(new SecretVault(KEY_B, dataDir))).toEqual({ current: sealedTokens, rekeyed: 0, unreadable: 0 });
  });

  it('under the new key alone: still readable, nothing to re-key, no warning', async () => {
    const b = await gateway({ OH_SECRET_KEY: KEY_B });
    expect((await call(b, 'GET', '/api/settings/secrets/GITHUB_TOKEN')).body).toBe('ghp-rotation');
    expect((await call(b, 'GET', '/api/settings', undefined, PLAIN.header)).body.agent_settings.llm.api_key).toBe('sk-settings');
    expect((await call(b, 'GET', '/api/profiles/p', undefined, PLAIN.header)).body.config.api_key).toBe('sk-profile');
    const fromSettings = await call(b, 'POST', '/api/conversations', FROM_SETTINGS);
    expect(fromSettings.status).toBe(201);
    await b.stop();
    expect(b.output()).not.toMatch(/re-encrypted|open with no configured key/);
  });

  it('under a key that opens none: a start-up warning, and 409 naming the secret on every path that reads one', async () => {
    const c = await gateway({ OH_SECRET_KEY: KEY_C });
    expect(await eventually(() => /stored secrets open with no configured key/.test(c.output()), 30_000)).toBe(true);
    // the conversation created from settings above carries the settings key too
    expect(c.output()).toContain(
      `${sealedTokens + 1} stored secrets open with no configured key (tenant_secrets.value 1, tenant_settings.agent_settings 1, llm_profiles.llm 1, conversations.agent 2, conversations.secrets 1)`,
    );
    expect(c.output()).toContain('Set OH_SECRET_KEY to the key they were stored under or add it to OH_PREVIOUS_SECRET_KEYS');
    for (const key of [SESSION_KEY, KEY_B, KEY_C]) expect(c.output()).not.toContain(key);

    const secret = await call(c, 'GET', '/api/settings/secrets/GITHUB_TOKEN');
    expect(secret.status).toBe(409);
    expect(secret.body.detail).toMatch(/^secret 'GITHUB_TOKEN' is encrypted with a key this server does not have: set it again, or configure the key it was stored under \(OH_SECRET_KEY, or one of OH_PREVIOUS_SECRET_KEYS\)$/);

    const settings = await call(c, 'GET', '/api/settings', undefined, PLAIN.header);
    expect(settings.status).toBe(409);
    expect(settings.body.detail).toMatch(/^the settings' agent_settings.llm.api_key is encrypted with a key this server does not have/);
    // Without plaintext nothing is decrypted: the settings still answer.
    expect((await call(c, 'GET', '/api/settings')).status).toBe(200);
    expect((await call(c, 'GET', '/api/settings', undefined, { 'X-Expose-Secrets': 'encrypted' })).status).toBe(200);

    const profile = await call(c, 'GET', '/api/profiles/p', undefined, PLAIN.header);
    expect(profile.status).toBe(409);
    expect(profile.body.detail).toMatch(/^the api_key of LLM profile 'p' is encrypted with a key this server does not have/);

    const fromSettings = await call(c, 'POST', '/api/conversations', FROM_SETTINGS);
    expect(fromSettings.status).toBe(409);
    expect(fromSettings.body.detail).toMatch(/^the settings' agent_settings.llm.api_key is encrypted with a key this server does not have/);

    const fromProfile = await call(c, 'POST', '/api/conversations', { agent_profile_id: agentProfileId, workspace: FROM_SETTINGS.workspace });
    expect(fromProfile.status).toBe(409);
    expect(fromProfile.body.detail).toMatch(/^the api_key of LLM profile 'p' is encrypted with a key this server does not have/);

    // Setting the secret again heals it.
    expect((await call(c, 'PUT', '/api/settings/secrets', { name: 'GITHUB_TOKEN', value: 'ghp-again' })).status).toBeLessThan(300);
    expect((await call(c, 'GET', '/api/settings/secrets/GITHUB_TOKEN')).body).toBe('ghp-again');
    await c.stop();
  });
});
