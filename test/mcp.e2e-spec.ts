import { readlinkSync } from 'node:fs';
import { LlmStub, McpHttpFixture, mcpStdioServer } from '@berth/testing';
import { SecretVault } from '@berth/crypto';
import { Database } from '@berth/persistence';
import { api, SocketClient, startServer, userMessage } from './support/server';

const KEY = 'mcp-test-key';
const ENV_SECRET = 'mcp-env-secret-4711';
const HEADER_TOKEN = 'mcp-header-token-0815';

/** MCP servers of an agent's mcp_config: started in the conversation's sandbox, their tools offered to the LLM, called by it. */
describe('MCP servers as tools', () => {
  const llm = new LlmStub();

  const agent = (mcp_config: Record<string, unknown>) => ({
    kind: 'Agent',
    llm: { model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0 },
    tools: [{ name: 'terminal' }],
    mcp_config,
  });

  async function setup(env: Record<string, string>) {
    const server = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', ...env });
    const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });
    const start = async (text: string, mcp_config: Record<string, unknown>) => {
      const res = await call('POST', '/api/conversations', {
        agent: agent(mcp_config),
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
        initial_message: userMessage(text, true),
      });
      expect(res.status).toBe(201);
      return res.body.id as string;
    };
    const finished = async (id: string) => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const info = (await call('GET', `/api/conversations/${id}`)).body;
        if (['finished', 'error', 'stuck'].includes(info.execution_status)) return info;
        if (Date.now() > deadline) throw new Error(`still ${info.execution_status}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const events = async (id: string) => (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items as any[];
    return { server, call, start, finished, events };
  }

  beforeAll(() => llm.start());
  afterAll(() => llm.stop());

  describe('in an isolated sandbox', () => {
    let ctx: Awaited<ReturnType<typeof setup>>;
    beforeAll(async () => {
      ctx = await setup({});
    });
    afterAll(() => ctx.server.close());

    it('starts a stdio server inside the sandbox, offers its tools and records MCPToolAction / MCPToolObservation', async () => {
      const text = 'mcp stdio where';
      llm.script(text, [
        { text: 'Asking the MCP server.', toolCalls: [{ name: 'whereami', arguments: { summary: 'where the server runs', variables: ['FIXTURE_TOKEN', 'OH_SECRET_KEY', 'BERTH_SANDBOX_TOKEN', 'DATABASE_URL', 'REDIS_URL'] } }] },
        { toolCalls: [{ name: 'echo', arguments: { text: 'hello over MCP', unused: null } }] },
        { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
      ]);
      const id = await ctx.start(text, { fx: mcpStdioServer({ FIXTURE_TOKEN: ENV_SECRET }) });
      expect((await ctx.finished(id)).execution_status).toBe('finished');
      const log = await ctx.events(id);

      // The LLM is offered the server's tools with the SDK's schema: summary first, then the server's own parameters.
      const offered = llm.requestsFor(text)[0].body.tools!;
      expect(offered.map((t) => t.function.name)).toEqual(['terminal', 'finish', 'think', 'whereami', 'echo', 'sleep', 'crash']);
      expect(offered.find((t) => t.function.name === 'echo')).toEqual({
        type: 'function',
        function: {
          name: 'echo',
          description: 'Returns the text it is given.',
          parameters: {
            type: 'object',
            properties: {
              summary: { type: 'string', description: expect.stringContaining('A concise summary') },
              text: { type: 'string', description: 'Text to return' },
            },
            required: ['text'],
          },
        },
      });
      // SystemPromptEvent.tools lists them as MCPToolDefinition, as the SDK dumps them.
      const echoSpec = log[0].tools.find((t: any) => t.title === 'echo');
      expect(echoSpec).toEqual({
        description: 'Returns the text it is given.',
        action_type: 'MCPToolAction',
        observation_type: 'MCPToolObservation',
        annotations: { readOnlyHint: true, destructiveHint: true, idempotentHint: false, openWorldHint: true },
        mcp_tool: {
          name: 'echo',
          description: 'Returns the text it is given.',
          inputSchema: { type: 'object', properties: { text: { type: 'string', description: 'Text to return' } }, required: ['text'] },
          annotations: { readOnlyHint: true },
        },
        kind: 'MCPToolDefinition',
        title: 'echo',
      });

      const actions = log.filter((e) => e.kind === 'ActionEvent');
      expect(actions[0]).toMatchObject({ tool_name: 'whereami', summary: 'where the server runs', action: { kind: 'MCPToolAction', data: { variables: expect.any(Array) } } });
      expect(actions[1].action).toEqual({ data: { text: 'hello over MCP' }, kind: 'MCPToolAction' });
      const observations = log.filter((e) => e.kind === 'ObservationEvent');
      expect(observations[1].observation).toEqual({
        content: [
          { cache_prompt: false, type: 'text', text: "[Tool 'echo' executed.]" },
          { cache_prompt: false, type: 'text', text: 'hello over MCP' },
        ],
        is_error: false,
        tool_name: 'echo',
        kind: 'MCPToolObservation',
      });

      // It ran inside the sandbox: another pid namespace, the conversation's working dir, none of the server's variables.
      const where = JSON.parse(observations[0].observation.content[1].text);
      expect(where.pid_namespace).not.toBe(readlinkSync('/proc/self/ns/pid'));
      expect(where.cwd).toMatch(/\/workspace\/project$/);
      expect(where.cwd.startsWith(ctx.server.dataDir)).toBe(true);
      expect(where.variables).toEqual({ FIXTURE_TOKEN: '<secret-hidden>', OH_SECRET_KEY: null, BERTH_SANDBOX_TOKEN: null, DATABASE_URL: null, REDIS_URL: null });

      // The LLM read the observation as the SDK renders it.
      const second = llm.requestsFor(text)[2].body.messages;
      expect(JSON.stringify(second)).toContain("[Tool 'echo' executed.]");

      // A tool that is not read-only also takes the LLM's security_risk, first (as the SDK adds it).
      expect(Object.keys((offered.find((t) => t.function.name === 'whereami')!.function.parameters as any).properties)).toEqual(['security_risk', 'summary', 'variables']);

      // The env credential is in no event, no answer (the conversation leaves env out, as the reference does), and stored encrypted.
      const info = (await ctx.call('GET', `/api/conversations/${id}`)).body;
      expect(info.agent.mcp_config.fx).not.toHaveProperty('env');
      expect(info.agent.mcp_config.fx.command).toBe(process.execPath);
      const everything = JSON.stringify(log) + JSON.stringify(info) + JSON.stringify(llm.requestsFor(text));
      expect(everything).not.toContain(ENV_SECRET);
      const row = await ctx.server.app.get(Database).prisma.conversation.findUniqueOrThrow({ where: { id: id.replace(/-/g, '') } }).catch(() => ctx.server.app.get(Database).prisma.conversation.findUniqueOrThrow({ where: { id } }));
      expect(JSON.stringify(row.agent)).not.toContain(ENV_SECRET);
      expect((ctx.server.app.get(SecretVault).openAgent(row.agent) as any).mcp_config.fx.env.FIXTURE_TOKEN).toBe(ENV_SECRET);
    });

    it('prefixes tools with their server when there are several, leaves out a server that cannot start, and shows a crash or a timeout as an error observation', async () => {
      const text = 'mcp failures';
      llm.script(text, [
        { toolCalls: [{ name: 'fx_crash', arguments: {} }] },
        { toolCalls: [{ name: 'fx_echo', arguments: { text: 'back again' } }] },
        { toolCalls: [{ name: 'fx_sleep', arguments: { ms: 10_000 } }] },
        { toolCalls: [{ name: 'fx_echo', arguments: { txt: 'wrong field' } }] },
        { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
      ]);
      const id = await ctx.start(text, {
        fx: mcpStdioServer({}, { timeout: 2 }),
        missing: { command: '/no/such/mcp-server', args: [] },
        refuses: mcpStdioServer({ MCP_FIXTURE_MODE: 'bad-handshake' }),
        exits: mcpStdioServer({ MCP_FIXTURE_MODE: 'exit' }),
      });
      expect((await ctx.finished(id)).execution_status).toBe('finished');
      const offered = llm.requestsFor(text)[0].body.tools!.map((t) => t.function.name);
      expect(offered).toEqual(['terminal', 'finish', 'think', 'fx_whereami', 'fx_echo', 'fx_sleep', 'fx_crash']);

      const log = await ctx.events(id);
      const observations = log.filter((e) => e.kind === 'ObservationEvent').map((e) => e.observation);
      expect(observations[0]).toMatchObject({ is_error: true, tool_name: 'fx_crash', kind: 'MCPToolObservation' });
      expect(observations[0].content[0].text).toMatch(/^Error calling MCP tool fx_crash: the MCP server exited \(code 7\)/);
      // The crashed server is started again for the next call.
      expect(observations[1]).toMatchObject({ is_error: false, content: [{}, { text: 'back again' }] });
      expect(observations[2]).toMatchObject({ is_error: true, tool_name: 'fx_sleep' });
      expect(observations[2].content[0].text).toBe(
        "MCP tool 'fx_sleep' timed out after 2 seconds. The tool server may be unresponsive or the operation is taking too long. Consider retrying or using an alternative approach.",
      );
      // Arguments the tool's schema does not take are the agent's error, as the SDK's validation makes them.
      const error = log.find((e) => e.kind === 'AgentErrorEvent');
      expect(error).toMatchObject({ tool_name: 'fx_echo' });
      expect(error.error).toContain('txt: Extra inputs are not permitted');
    });

    it('shows a server that cannot start live on the event socket (ServerErrorEvent, not stored) and goes on without it', async () => {
      const text = 'mcp refuses';
      llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] }]);
      const created = await ctx.call('POST', '/api/conversations', {
        agent: agent({ refuses: mcpStdioServer({ MCP_FIXTURE_MODE: 'bad-handshake', FIXTURE_TOKEN: ENV_SECRET }) }),
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      });
      const id = created.body.id as string;
      const socket = new SocketClient(`${ctx.server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
      await socket.open();
      expect((await ctx.call('POST', `/api/conversations/${id}/events`, userMessage(text, true))).status).toBeLessThan(300);
      const frames = await socket.waitFor((f) => f.some((e) => e.kind === 'ServerErrorEvent'), 30_000, 'a ServerErrorEvent');
      socket.close();
      const error = frames.find((e) => e.kind === 'ServerErrorEvent');
      expect(error).toMatchObject({ source: 'environment', code: 'MCPError' });
      expect(error.detail).toBe("MCP server 'refuses' failed to start; continuing without its tools: the MCP server failed its handshake: MCP error -32603: this server refuses to start");
      expect((await ctx.finished(id)).execution_status).toBe('finished');
      const log = await ctx.events(id);
      expect(log.some((e) => e.kind === 'ServerErrorEvent')).toBe(false);
      expect(llm.requestsFor(text)[0].body.tools!.map((t) => t.function.name)).toEqual(['terminal', 'finish', 'think']);
    });

    it('interrupts an MCP call in flight: the action gets the interrupt error and the run stops at once', async () => {
      const text = 'mcp interrupt';
      llm.script(text, [{ toolCalls: [{ name: 'sleep', arguments: { ms: 30_000 } }] }]);
      const id = await ctx.start(text, { fx: mcpStdioServer() });
      const deadline = Date.now() + 30_000;
      while (!(await ctx.events(id)).some((e) => e.kind === 'ActionEvent' && e.tool_name === 'sleep')) {
        if (Date.now() > deadline) throw new Error('no sleep action');
        await new Promise((r) => setTimeout(r, 50));
      }
      const interrupted = Date.now();
      expect((await ctx.call('POST', `/api/conversations/${id}/interrupt`)).status).toBe(200);
      for (;;) {
        const info = (await ctx.call('GET', `/api/conversations/${id}`)).body;
        if (info.execution_status !== 'running') break;
        if (Date.now() > deadline) throw new Error('still running');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(Date.now() - interrupted).toBeLessThan(10_000);
      const error = (await ctx.events(id)).find((e) => e.kind === 'AgentErrorEvent' && e.tool_name === 'sleep');
      expect(error?.error).toBe('The action was interrupted by the user.');
    });

    it('reaches a remote server from the sandbox only as its network allows: host loopback is not reachable from an isolated sandbox', async () => {
      const remote = new McpHttpFixture();
      await remote.start();
      try {
        const text = 'mcp remote blocked';
        llm.script(text, [{ toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] }]);
        const id = await ctx.start(text, { remote: { url: remote.url } });
        expect((await ctx.finished(id)).execution_status).toBe('finished');
        expect(llm.requestsFor(text)[0].body.tools!.map((t) => t.function.name)).toEqual(['terminal', 'finish', 'think']);
        expect(remote.requests).toEqual([]);
      } finally {
        await remote.stop();
      }
    });

    it('refuses an mcp_config it cannot run, with a 422', async () => {
      const res = await ctx.call('POST', '/api/conversations', {
        agent: agent({ broken: { args: ['x'] } }),
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      });
      expect(res.status).toBe(422);
      expect(JSON.stringify(res.body.detail)).toContain("an MCP server needs 'command' (stdio) or 'url' (remote)");
    });
  });

  describe('with remote servers the sandbox can reach', () => {
    let ctx: Awaited<ReturnType<typeof setup>>;
    const remote = new McpHttpFixture(HEADER_TOKEN);
    const legacy = new McpHttpFixture(HEADER_TOKEN, 'sse');
    beforeAll(async () => {
      await remote.start();
      await legacy.start();
      // Without isolation the sandbox shares the host's network, so it reaches the fixture on 127.0.0.1.
      ctx = await setup({ BERTH_SANDBOX_ISOLATION: 'none' });
    });
    afterAll(async () => {
      await ctx.server.close();
      await remote.stop();
      await legacy.stop();
    });

    it('calls its tools with the configured headers and its session, and keeps the headers out of every event', async () => {
      const text = 'mcp http add';
      llm.script(text, [{ toolCalls: [{ name: 'add', arguments: { a: 2, b: 3 } }] }, { toolCalls: [{ name: 'finish', arguments: { message: 'five' } }] }]);
      const id = await ctx.start(text, { calc: { url: remote.url, transport: 'http', headers: { Authorization: `Bearer ${HEADER_TOKEN}` } } });
      expect((await ctx.finished(id)).execution_status).toBe('finished');
      const log = await ctx.events(id);
      const observation = log.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'add');
      expect(observation.observation).toMatchObject({ is_error: false, content: [{ text: "[Tool 'add' executed.]" }, { text: '5' }], kind: 'MCPToolObservation' });
      expect(remote.requests.every((r) => r.authorized)).toBe(true);
      expect(remote.requests.filter((r) => r.method !== 'initialize').every((r) => r.session !== null)).toBe(true);
      expect(remote.requests.map((r) => r.method)).toEqual(expect.arrayContaining(['initialize', 'notifications/initialized', 'tools/list', 'tools/call']));
      const info = (await ctx.call('GET', `/api/conversations/${id}`)).body;
      expect(JSON.stringify(log) + JSON.stringify(info)).not.toContain(HEADER_TOKEN);
    });

    it('speaks the older SSE transport too: the stream, its endpoint, answers on the stream', async () => {
      const text = 'mcp sse add';
      llm.script(text, [{ toolCalls: [{ name: 'calc_add', arguments: { a: 20, b: 22 } }] }, { toolCalls: [{ name: 'finish', arguments: { message: '42' } }] }]);
      const headers = { Authorization: `Bearer ${HEADER_TOKEN}` };
      const id = await ctx.start(text, { calc: { url: legacy.url, transport: 'sse', headers }, broken: { url: `${legacy.url}-gone`, transport: 'sse', headers } });
      expect((await ctx.finished(id)).execution_status).toBe('finished');
      expect(llm.requestsFor(text)[0].body.tools!.map((t) => t.function.name)).toEqual(['terminal', 'finish', 'think', 'calc_add', 'calc_slow']);
      const observation = (await ctx.events(id)).find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'calc_add');
      expect(observation.observation).toMatchObject({ is_error: false, content: [{}, { text: '42' }] });
      expect(legacy.requests.filter((r) => r.method !== 'GET /sse').every((r) => r.authorized && r.session !== null)).toBe(true);
      expect(legacy.requests.map((r) => r.method)).toEqual(expect.arrayContaining(['GET /sse', 'initialize', 'notifications/initialized', 'tools/list', 'tools/call']));
    });
  });
});
