import { randomUUID } from 'node:crypto';
import { WsRouter } from '../apps/gateway/src/sockets/ws-router';
import { registeredRoutes, Route } from './support/routes';
import { api, SocketClient, STORAGES, useServer } from './support/server';
import { expectNothingOf, makeTenantWorld, TenantWorld } from './support/tenants';

const KEY = 'matrix-server-key';

/**
 * Who may call a route, by path prefix (first match wins). A route no rule covers fails the suite:
 * a new route must be classified here.
 */
type Access = 'public' | 'tenant' | 'admin';
const ACCESS: { match: RegExp; access: Access }[] = [
  // Admin keys only (tenant keys → 401/403).
  { match: /^\/api\/admin(\/|$)/, access: 'admin' },
  // Documented as open: probes, server details, the API docs.
  { match: /^\/(alive|health|ready|server_info|openapi\.json|openapi\.yaml|favicon\.ico)?$/, access: 'public' },
  // Prometheus' scrape target: open unless BERTH_METRICS_TOKEN is set (test/metrics.e2e-spec.ts), never a tenant key's.
  { match: /^\/metrics$/, access: 'public' },
  { match: /^\/docs(\/|$)/, access: 'public' },
  { match: /^\/api\//, access: 'tenant' },
];

/**
 * Where another tenant's id gets an answer other than 404 (as OpenHands answers such a route for any
 * name), and routes whose object is named by a path the caller's own routing resolves (a foreign path
 * is no path of the caller's: 400).
 */
const FOREIGN_STATUS: Record<string, number> = {
  // Clear-text secret values are for the server's own keys only: a tenant key gets 403 for any name.
  'GET /api/settings/secrets/:name': 403,
  // Names are per tenant: the same name makes B's own profile (dropped again at once; A's is checked below).
  'POST /api/profiles/:name': 201,
  // Idempotent, as OpenHands: deletes nothing of the other tenant's (checked below).
  'DELETE /api/profiles/:name': 200,
  // A pre-flight of the draft in the body: the name is only a label, as in OpenHands.
  'POST /api/profiles/:name/validate': 200,
  // As LLM profiles: B's own profile of that name (dropped again at once), and an idempotent delete.
  'POST /api/agent-profiles/:name': 201,
  'DELETE /api/agent-profiles/:name': 200,
};

/** Request bodies that pass validation, so the answer is the route's own. */
const BODIES: Record<string, unknown> = {
  'PATCH /api/conversations/:conversation_id': { title: 'taken' },
  'POST /api/conversations/:conversation_id/secrets': { secrets: { X: 'y' } },
  'POST /api/conversations/:conversation_id/confirmation_policy': { policy: { kind: 'NeverConfirm' } },
  'POST /api/conversations/:conversation_id/security_analyzer': { security_analyzer: { kind: 'LLMSecurityAnalyzer' } },
  'POST /api/conversations/:conversation_id/switch_llm': { llm: { model: 'stolen' } },
  'POST /api/conversations/:conversation_id/switch_profile': { profile_name: 'stolen' },
  'POST /api/conversations/:conversation_id/ask_agent': { question: 'what is in there?' },
  'POST /api/conversations/:conversation_id/events': { role: 'user', content: [{ type: 'text', text: 'hi' }] },
  'POST /api/conversations/:conversation_id/events/respond_to_confirmation': { accept: false },
  'POST /api/profiles/:name': { llm: { model: 'stolen' }, include_secrets: false },
  'POST /api/profiles/:name/rename': { new_name: 'stolen' },
  // A loopback endpoint that refuses at once: the pre-flight reaches no outside host.
  'POST /api/profiles/:name/validate': { llm: { model: 'm', base_url: 'http://127.0.0.1:9/v1' } },
  'POST /api/agent-profiles/:name': { llm_profile_ref: 'stolen' },
  'POST /api/agent-profiles/:name/rename': { new_name: 'stolen' },
  'PATCH /api/llm/provider-connections/:connection_id': { display_name: 'stolen' },
  // OpenHands' batch read takes a JSON list in a GET body.
  'GET /api/conversations/:conversation_id/events': ['f'.repeat(32)],
};

function accessOf(path: string): Access | undefined {
  return ACCESS.find((rule) => rule.match.test(path))?.access;
}

/** The route with tenant A's real objects in its path, or null when it names none of A's. */
type IdKind = 'conversation' | 'sandbox' | 'event' | 'name' | 'command' | 'agentProfile' | 'connection';
function withForeignIds(route: Route, a: TenantWorld, id: (kind: IdKind) => string): string | null {
  let named = false;
  let path = route.path.replace(/:([a-z_]+)/g, (_, param: string) => {
    named = true;
    if (param === 'conversation_id') return id('conversation');
    if (param === 'sandbox_id') return id('sandbox');
    if (param === 'event_id') return id('event');
    if (param === 'name') return id('name');
    if (param === 'profile_id') return id('agentProfile');
    if (param === 'connection_id') return id('connection');
    named = false;
    return 'x';
  });
  if (!path.endsWith('*')) return named ? path : null;
  const base = path.slice(0, -1);
  if (base.endsWith('/workspace/')) return `${base}a_file`;
  // A's bash command by id; a command run in a folder of A's (the body names it); clearing names nothing.
  if (base === '/api/bash/') return { GET: `${base}bash_events/${id('command')}`, POST: `${base}execute_bash_command` }[route.method] ?? null;
  if (base === '/api/file/') return `${base}download?path=${encodeURIComponent(`${a.homeRoot}/a_file`)}`;
  if (base === '/api/git/') return `${base}changes?path=${encodeURIComponent(a.workingDir)}`;
  path = `${base}x`;
  return named ? path : null;
}

describe.each(STORAGES)('auth matrix: every route and socket, without a key and with another tenant\'s ids (%s)', (storage) => {
  const ctx = useServer(storage, { OH_SESSION_API_KEYS_0: KEY });
  let a: TenantWorld;
  let b: TenantWorld;
  let routes: Route[];

  beforeAll(async () => {
    a = await makeTenantWorld(ctx.server);
    b = await makeTenantWorld(ctx.server);
    routes = registeredRoutes(ctx.server);
  }, 120_000);

  it('classifies every registered route', () => {
    expect(routes.length).toBeGreaterThan(50);
    for (const p of ['/api/conversations/:conversation_id', '/api/sandboxes/:sandbox_id', '/api/settings/secrets/:name', '/api/file/*', '/health', '/api/agent-profiles/:name', '/api/agent-profiles/:profile_id/activate', '/api/llm/provider-connections/:connection_id']) {
      expect(routes.map((r) => r.path)).toContain(p);
    }
    expect(routes.filter((r) => !accessOf(r.path)).map((r) => `${r.method} ${r.path}`)).toEqual([]);
  });

  it('answers 401 without a key, at the top level and under /sandboxes/{id}, except the public routes', async () => {
    for (const route of routes) {
      const path = withForeignIds(route, a, (kind) => (kind === 'name' ? a.secretName : randomUUID())) ?? route.path.replace(/:[a-z_]+/g, 'x').replace(/\*$/, 'x');
      const access = accessOf(route.path);
      for (const prefix of ['', `/sandboxes/${a.sandboxId}`]) {
        const res = await api(ctx.server, route.method, prefix + path, { body: BODIES[`${route.method} ${route.path}`] ?? (route.method === 'GET' ? undefined : {}) });
        if (access === 'public') expect({ route: `${route.method} ${prefix}${path}`, status: res.status }).not.toEqual({ route: `${route.method} ${prefix}${path}`, status: 401 });
        else expect({ route: `${route.method} ${prefix}${path}`, status: res.status }).toEqual({ route: `${route.method} ${prefix}${path}`, status: 401 });
      }
    }
  });

  it("answers tenant B with tenant A's ids as with ids that exist nowhere: 404 (or the documented not-found answer)", async () => {
    let checked = 0;
    for (const route of routes) {
      const access = accessOf(route.path);
      const key = `${route.method} ${route.path}`;
      const body = key === 'POST /api/bash/*' ? { cwd: a.homeRoot, command: 'cat a_file' } : (BODIES[key] ?? (route.method === 'GET' ? undefined : {}));
      const foreignPath = withForeignIds(route, a, (kind) =>
        ({
          conversation: a.conversationId,
          sandbox: a.sandboxId,
          event: a.eventId,
          command: a.commandId,
          agentProfile: a.agentProfileId,
          connection: a.connectionId,
          name: route.path.startsWith('/api/profiles') ? a.profileName : route.path.startsWith('/api/agent-profiles') ? a.agentProfileName : a.secretName,
        })[kind],
      );
      if (access === 'admin') {
        const res = await api(ctx.server, route.method, foreignPath ?? route.path, { key: b.key, body });
        expect([401, 403]).toContain(res.status);
        continue;
      }
      if (access !== 'tenant') continue;
      if (foreignPath) {
        const foreign = await api(ctx.server, route.method, foreignPath, { key: b.key, body });
        // A path in A's home or working dir is no path of B's: the routing refuses it (400).
        const byPath = route.path === '/api/file/*' || route.path === '/api/git/*' || key === 'POST /api/bash/*';
        const expected = FOREIGN_STATUS[key] ?? (byPath ? 400 : 404);
        expect({ route: key, status: foreign.status }).toEqual({ route: key, status: expected });
        expectNothingOf(a, key, JSON.stringify(foreign.body), [
          a.conversationId,
          a.sandboxId,
          a.eventId,
          a.commandId,
          a.profileName,
          a.secretName,
          a.agentProfileName,
          a.agentProfileId,
          a.connectionId,
          a.homeRoot,
          a.workingDir,
        ]);
        checked++;
        if (key === 'POST /api/profiles/:name' || key === 'POST /api/agent-profiles/:name') await api(ctx.server, 'DELETE', foreignPath, { key: b.key });
      } else if (route.method === 'GET') {
        // No id of A's in the path: B's answer is B's own and shows nothing of A's.
        const own = await api(ctx.server, route.method, route.path, { key: b.key });
        expectNothingOf(a, key, JSON.stringify(own.body));
      }
      // Under another tenant's sandbox prefix every tenant route is "not found".
      const prefixed = await api(ctx.server, route.method, `/sandboxes/${a.sandboxId}${foreignPath ?? route.path.replace(/\*$/, 'x')}`, { key: b.key, body });
      expect({ route: `/sandboxes/{A}${key}`, status: prefixed.status }).toEqual({ route: `/sandboxes/{A}${key}`, status: 404 });
      expect(prefixed.body).toEqual({ detail: `Sandbox not found: ${a.sandboxId}` });
    }
    expect(checked).toBeGreaterThan(20);
    // Nothing B did changed anything of A's.
    const mine = (await api(ctx.server, 'GET', `/api/conversations/${a.conversationId}`, { key: a.key })).body;
    expect(mine.title).not.toBe('taken');
    expect((await api(ctx.server, 'GET', `/api/sandboxes/${a.sandboxId}`, { key: a.key })).body.status).toBe('running');
    expect((await api(ctx.server, 'GET', `/api/profiles/${a.profileName}`, { key: a.key })).body.config.model).toMatch(/^profile-model-/);
    expect((await api(ctx.server, 'GET', '/api/settings/secrets', { key: a.key })).body.secrets.map((s: { name: string }) => s.name)).toContain(a.secretName);
    const agentProfile = (await api(ctx.server, 'GET', `/api/agent-profiles/${a.agentProfileName}`, { key: a.key })).body.profile;
    expect(agentProfile).toMatchObject({ id: a.agentProfileId, llm_profile_ref: a.profileName, revision: 0 });
    expect((await api(ctx.server, 'GET', '/api/llm/provider-connections', { key: a.key })).body).toEqual([expect.objectContaining({ id: a.connectionId, display_name: expect.stringMatching(/^connection-/) })]);
  });

  it('closes every socket with 4001 without a key and 4004 on another tenant\'s ids', async () => {
    const patterns = ctx.server.app.get(WsRouter).patterns;
    expect(patterns.sort()).toEqual(['/sockets/bash-events', '/sockets/events/:conversation_id', '/sockets/session/:conversation_id']);
    for (const pattern of patterns) {
      const path = pattern.replace(':conversation_id', a.conversationId);
      for (const prefix of ['', `/sandboxes/${a.sandboxId}`]) {
        const anonymous = new SocketClient(`${ctx.server.wsUrl}${prefix}${path}`);
        await anonymous.open();
        anonymous.send({ type: 'auth', session_api_key: 'wrong' });
        expect({ url: prefix + path, code: await anonymous.waitClosed() }).toEqual({ url: prefix + path, code: 4001 });
        // Without a conversation id, the top-level bash socket is the caller's own home.
        if (!prefix && !pattern.includes(':')) continue;
        const foreign = new SocketClient(`${ctx.server.wsUrl}${prefix}${path}?session_api_key=${b.key}&resend_mode=all`);
        expect({ url: prefix + path, code: await foreign.waitClosed() }).toEqual({ url: prefix + path, code: 4004 });
        expectNothingOf(a, prefix + path, JSON.stringify(foreign.frames), [a.conversationId, a.sandboxId]);
      }
    }
  });
});
