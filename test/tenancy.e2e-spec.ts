import { Database, DEFAULT_TENANT_ID } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { api, SocketClient, startRequest, STORAGES, useServer } from './support/server';
import { expectNothingOf, makeTenantWorld, TenantWorld } from './support/tenants';

const KEY = 'tenancy-server-key';
/** The default tenant's home used to have this fixed id. */
const OLD_DEFAULT_HOME = '00000000-0000-4000-8000-00000000000d';

/**
 * Two tenants with real objects on the real HTTP and WebSocket surface: tenant B, knowing every id
 * of tenant A, can neither read, run in, stop, delete nor even detect anything of A's.
 */
describe.each(STORAGES)('tenancy: one tenant cannot reach another (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY });
  let a: TenantWorld;
  let b: TenantWorld;
  const asB = (method: string, path: string, body?: unknown) => api(ctx.server, method, path, { key: b.key, body });
  const asA = (method: string, path: string, body?: unknown) => api(ctx.server, method, path, { key: a.key, body });

  /** B's answer for A's id is the answer for an id that exists nowhere: nothing tells them apart. */
  async function sameAsMissing(method: string, path: (id: string) => string, foreignId: string, body?: unknown) {
    const missing = randomUUID();
    const foreign = await asB(method, path(foreignId), body);
    const absent = await asB(method, path(missing), body);
    expect({ route: `${method} ${path(':id')}`, status: foreign.status }).toEqual({ route: `${method} ${path(':id')}`, status: absent.status });
    expect(JSON.stringify(foreign.body).split(foreignId).join('ID')).toBe(JSON.stringify(absent.body).split(missing).join('ID'));
    expectNothingOf(a, `${method} ${path(':id')}`, JSON.stringify(foreign.body), [foreignId, a.eventId]);
    return foreign;
  }

  beforeAll(async () => {
    a = await makeTenantWorld(ctx.server);
    b = await makeTenantWorld(ctx.server);
  }, 120_000);

  it('gives every tenant a home of its own whose id is random and stored, the default tenant too', async () => {
    expect(a.homeId).not.toBe(b.homeId);
    expect(a.homeRoot).not.toBe(b.homeRoot);
    // The database is shared by the suites of a run: only these three tenants' homes count.
    const homesOf = () =>
      ctx.server.app.get(Database).prisma.sandbox.findMany({ where: { kind: 'home', tenantId: { in: [a.tenantId, b.tenantId, DEFAULT_TENANT_ID] } } });
    await api(ctx.server, 'GET', '/api/file/home', { key: KEY });
    const homes = await homesOf();
    expect(homes.map((h) => h.tenantId).sort()).toEqual([a.tenantId, b.tenantId, DEFAULT_TENANT_ID].sort());
    expect(homes.map((h) => h.id)).not.toContain(OLD_DEFAULT_HOME);
    // A second call finds the same home: it is looked up by tenant, not recomputed.
    await api(ctx.server, 'GET', '/api/file/home', { key: KEY });
    expect((await homesOf()).map((h) => h.id).sort()).toEqual(homes.map((h) => h.id).sort());
  });

  it("refuses the hijack: a conversation named after A's sandbox gets a sandbox of its own, and its delete stops nothing of A's", async () => {
    for (const target of [a.homeId, a.sandboxId, a.conversationSandboxId]) {
      const created = await asB('POST', '/api/conversations', startRequest({ conversation_id: target, workspace: { kind: 'LocalWorkspace', working_dir: '/' } }));
      expect(created.status).toBe(201);
      const ran = await asB('POST', '/api/bash/execute_bash_command', { cwd: '/', command: 'cat a_file; ls' });
      expect(ran.status).toBe(200);
      expectNothingOf(a, 'a command in the hijacking conversation', JSON.stringify(ran.body));
      expect(JSON.stringify(ran.body)).not.toContain('secret');
      const info = (await asB('GET', `/api/conversations/${target}`)).body;
      expect(info.sandbox_id).toEqual(expect.any(String));
      expect(info.sandbox_id).not.toBe(target);
      expect((await asB('DELETE', `/api/conversations/${target}`)).status).toBe(200);
    }
    for (const id of [a.homeId, a.sandboxId, a.conversationSandboxId]) expect((await asA('GET', `/api/sandboxes/${id}`)).body.status).toBe('running');
    expect((await asA('POST', `/sandboxes/${a.sandboxId}/api/bash/execute_bash_command`, { command: 'cat a_file' })).body.stdout).toMatch(/sandbox-secret-/);
    for (const cwd of [a.homeRoot, a.workingDir]) {
      expect((await asA('POST', '/api/bash/execute_bash_command', { cwd, command: 'cat a_file' })).body.stdout).toMatch(/(home|conversation)-secret-/);
    }
  });

  it("answers another tenant's conversation_id, sandbox_id and parent_conversation_id as unknown ones", async () => {
    // No conversation can be made under an id in use: 409, naming nothing of A's.
    const taken = await asB('POST', '/api/conversations', startRequest({ conversation_id: a.conversationId }));
    expect(taken.status).toBe(409);
    expect(taken.body).toEqual({ detail: `Conversation id already in use: ${a.conversationId}` });
    const inForeignSandbox = await asB('POST', '/api/conversations', startRequest({ sandbox_id: a.sandboxId }));
    expect(inForeignSandbox.status).toBe(404);
    expect(inForeignSandbox.body).toEqual({ detail: `Sandbox not found: ${a.sandboxId}` });
    const withForeignParent = await asB('POST', '/api/conversations', startRequest({ parent_conversation_id: a.conversationId, workspace: { working_dir: a.workingDir } }));
    const withMissingParent = await asB('POST', '/api/conversations', startRequest({ parent_conversation_id: randomUUID(), workspace: { working_dir: a.workingDir } }));
    expect(withForeignParent.status).toBe(422);
    expect(withMissingParent.status).toBe(422);
  });

  it("cannot read, run in, pause, resume or delete A's sandboxes and home", async () => {
    for (const id of [a.homeId, a.sandboxId, a.conversationSandboxId]) {
      for (const [method, path] of [
        ['GET', (s: string) => `/api/sandboxes/${s}`],
        ['POST', (s: string) => `/api/sandboxes/${s}/pause`],
        ['POST', (s: string) => `/api/sandboxes/${s}/resume`],
        ['DELETE', (s: string) => `/api/sandboxes/${s}`],
        ['GET', (s: string) => `/sandboxes/${s}/api/file/home`],
        ['GET', (s: string) => `/sandboxes/${s}/api/file/download?path=${encodeURIComponent(`${a.homeRoot}/a_file`)}`],
        ['GET', (s: string) => `/sandboxes/${s}/api/conversations/search`],
      ] as const) {
        expect((await sameAsMissing(method, path, id)).status).toBe(404);
      }
      expect((await sameAsMissing('POST', (s) => `/sandboxes/${s}/api/bash/execute_bash_command`, id, { command: 'cat a_file' })).status).toBe(404);
    }
    // A path of A's home or working dir, without the prefix, is no path of B's.
    for (const path of [`${a.homeRoot}/a_file`, `${a.workingDir}/a_file`]) {
      const download = await asB('GET', `/api/file/download?path=${encodeURIComponent(path)}`);
      expect(download.status).toBe(400);
      expect(JSON.stringify(download.body)).not.toContain('secret');
      const ran = await asB('POST', '/api/bash/execute_bash_command', { cwd: path.replace(/\/a_file$/, ''), command: 'cat a_file' });
      expect(JSON.stringify(ran.body)).not.toContain('secret');
    }
    expect((await sameAsMissing('GET', (c) => `/api/bash/bash_events/${c}`, a.commandId)).status).toBe(404);
    const page = await asB('GET', '/api/bash/bash_events/search');
    expectNothingOf(a, "B's bash events", JSON.stringify(page.body));
    expectNothingOf(a, "B's sandboxes", JSON.stringify((await asB('GET', '/api/sandboxes')).body));
  });

  it("cannot read, change, run, stop or delete A's conversation and events", async () => {
    const c = a.conversationId;
    for (const [method, path, body] of [
      ['GET', (id: string) => `/api/conversations/${id}`],
      ['PATCH', (id: string) => `/api/conversations/${id}`, { title: 'taken' }],
      ['POST', (id: string) => `/api/conversations/${id}/run`],
      ['POST', (id: string) => `/api/conversations/${id}/secrets`, { secrets: { X: 'y' } }],
      ['POST', (id: string) => `/api/conversations/${id}/confirmation_policy`, { policy: { kind: 'NeverConfirm' } }],
      ['GET', (id: string) => `/api/conversations/${id}/agent_final_response`],
      ['GET', (id: string) => `/api/conversations/${id}/events/search`],
      ['GET', (id: string) => `/api/conversations/${id}/events/count`],
      ['GET', (id: string) => `/api/conversations/${id}/events/${a.eventId}`],
      ['POST', (id: string) => `/api/conversations/${id}/events`, { role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      ['POST', (id: string) => `/api/conversations/${id}/events/respond_to_confirmation`, { accept: false }],
      ['GET', (id: string) => `/api/conversations/${id}/workspace/a_file`],
      ['POST', (id: string) => `/api/conversations/${id}/pause`],
      ['POST', (id: string) => `/api/conversations/${id}/interrupt`],
      ['DELETE', (id: string) => `/api/conversations/${id}`],
    ] as const) {
      expect((await sameAsMissing(method, path, c, body)).status).toBe(404);
    }
    const batch = await asB('GET', `/api/conversations?ids=${c}`);
    expect(batch.body).toEqual([null]);
    expectNothingOf(a, "B's search", JSON.stringify((await asB('GET', '/api/conversations/search')).body));
    expect((await asB('GET', '/api/conversations/count')).body).toBe((await asB('GET', '/api/conversations/search?limit=100')).body.items.length);

    const info = (await asA('GET', `/api/conversations/${c}`)).body;
    expect(info.title).not.toBe('taken');
    expect(info.execution_status).toBe('idle');
    expect(info.secret_registry.secret_sources).toEqual({});
  });

  it("cannot see or change A's settings, secrets and LLM profiles", async () => {
    expectNothingOf(a, "B's settings", JSON.stringify((await asB('GET', '/api/settings')).body));
    expectNothingOf(a, "B's secrets", JSON.stringify((await asB('GET', '/api/settings/secrets')).body));
    expectNothingOf(a, "B's profiles", JSON.stringify((await asB('GET', '/api/profiles')).body));
    const missingName = 'PROFILE_NOWHERE';
    expect((await asB('GET', `/api/settings/secrets/${a.secretName}`)).status).toBe((await asB('GET', `/api/settings/secrets/${missingName}`)).status);
    expect((await asB('DELETE', `/api/settings/secrets/${a.secretName}`)).status).toBe(404);
    for (const [method, suffix, body] of [
      ['GET', ''],
      ['POST', '/rename', { new_name: 'stolen' }],
      ['POST', '/activate'],
    ] as const) {
      const foreign = await asB(method, `/api/profiles/${a.profileName}${suffix}`, body);
      expect(foreign.status).toBe(404);
      expect(foreign.body).toEqual({ detail: `Profile '${a.profileName}' not found` });
    }
    // Deleting is idempotent (as OpenHands): B deletes nothing of A's.
    await asB('DELETE', `/api/profiles/${a.profileName}`);
    expect((await asA('GET', `/api/profiles/${a.profileName}`)).status).toBe(200);
    expect((await asA('GET', '/api/settings/secrets')).body.secrets.map((s: { name: string }) => s.name)).toContain(a.secretName);
  });

  it("closes B's sockets on A's conversation and sandboxes with 4004", async () => {
    const urls = [
      `/sockets/events/${a.conversationId}`,
      `/sandboxes/${a.sandboxId}/sockets/bash-events`,
      `/sandboxes/${a.homeId}/sockets/bash-events`,
      `/sandboxes/${a.conversationSandboxId}/sockets/events/${a.conversationId}`,
      `/sandboxes/${b.conversationSandboxId}/sockets/events/${a.conversationId}`,
    ];
    for (const url of urls) {
      const ws = new SocketClient(`${ctx.server.wsUrl}${url}?session_api_key=${b.key}&resend_mode=all`);
      expect({ url, code: await ws.waitClosed() }).toEqual({ url, code: 4004 });
      expectNothingOf(a, url, JSON.stringify(ws.frames));
    }
    // B's own bash-events socket streams B's home, never A's commands.
    const own = new SocketClient(`${ctx.server.wsUrl}/sockets/bash-events?session_api_key=${b.key}&resend_mode=all`);
    await own.waitFor((frames) => frames.some((f) => f.id === b.commandId || f.command_id === b.commandId), 10_000, "B's command");
    expectNothingOf(a, "B's bash-events socket", JSON.stringify(own.frames));
    own.close();
  });
});
