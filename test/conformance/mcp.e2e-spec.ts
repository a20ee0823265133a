import { randomUUID } from 'node:crypto';
import { mcpStdioServer } from '@berth/testing';
import type { StubRequest, StubTurn } from '@berth/testing';
import { compareSequences, compareShapes, compareValues, describeDifference, Difference, judge } from './compare';
import { allEvents, send, startTargets, Target, Targets, waitStatus } from './targets';

/**
 * The same MCP run on both servers: the stdio fixture (libs/testing/fixtures) as the agent's one
 * mcp_config server, the scripted LLM calling its `echo` tool, then finish. Compared: the tools the
 * LLM is offered, the order of event kinds, the shapes of the events, and the MCP parts by value
 * (SystemPromptEvent.tools' MCPToolDefinition, MCPToolAction, MCPToolObservation).
 */

jest.setTimeout(240_000);

const STATS = 'ConversationStateUpdateEvent:stats';
const label = (e: Record<string, any>) => (e.kind === 'ConversationStateUpdateEvent' ? `${e.kind}:${e.key}` : String(e.kind));
const orderOf = (events: Record<string, any>[]) => events.map(label).filter((l) => l !== STATS);

/** Calls `echo` once, then finishes; a request without tools is the reference's title call. */
function mcpScript(request: StubRequest): StubTurn {
  if (!request.body.tools?.length) return { text: 'Conformance title' };
  if (request.body.messages.at(-1)?.role === 'tool') return { toolCalls: [{ name: 'finish', arguments: { message: 'Echoed.' } }] };
  return { text: 'Echoing.', toolCalls: [{ name: 'echo', arguments: { text: 'conformance-mcp', summary: 'echo a word' } }] };
}

describe('conformance: MCP tools', () => {
  let targets: Targets;
  const found: Difference[] = [];
  const firstMessage = (t: Target) => `mcp: echo on ${t.name}`;

  beforeAll(async () => {
    // The reference encrypts an agent's MCP env in its answers, with a Fernet key it makes as standard base64 of
    // sha256(OH_SECRET_KEY) (default: the session key): only a key whose hash has no '+' or '/' in it works.
    targets = await startTargets({ referenceEnv: { OH_SECRET_KEY: 'conformance-secret-2' } });
    for (const t of [targets.reference, targets.berth]) targets.llm.script(firstMessage(t), mcpScript);
  }, 180_000);

  afterAll(async () => {
    await targets?.stop();
  });

  it('offers, calls and records an MCP stdio server tool as the reference does', async () => {
    const run = async (t: Target) => {
      const id = randomUUID();
      const res = await send(t, {
        method: 'POST',
        path: '/api/conversations',
        body: {
          conversation_id: id,
          agent: {
            kind: 'Agent',
            llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-conformance', base_url: t.llmUrl, num_retries: 0 },
            tools: [{ name: 'terminal' }],
            mcp_config: { fx: mcpStdioServer({ FIXTURE_TOKEN: 'conformance-env-secret' }) },
          },
          workspace: { kind: 'LocalWorkspace', working_dir: t.workingDir(`mcp-${id.slice(0, 8)}`) },
          initial_message: { role: 'user', content: [{ type: 'text', text: firstMessage(t) }] },
        },
      });
      if (res.status !== 201) throw new Error(`${t.name}: create answered ${res.status}: ${res.text}`);
      const info = await waitStatus(t, id, ['finished', 'error', 'stuck']);
      await new Promise((r) => setTimeout(r, 500));
      return { info, create: res.json, events: await allEvents(t, id) };
    };
    const [ref, berth] = await Promise.all([run(targets.reference), run(targets.berth)]);
    expect([ref.info.execution_status, berth.info.execution_status]).toEqual(['finished', 'finished']);

    const offered = (t: Target) => targets.llm.requestsFor(firstMessage(t)).find((r) => r.body.tools?.length)?.body.tools ?? [];
    const mcpTools = (tools: { function: { name: string } }[]) => tools.filter((tool) => ['whereami', 'echo', 'sleep', 'crash'].includes(tool.function.name));
    found.push(...compareValues('mcp run', 'values', 'LLM tools: the MCP ones', mcpTools(offered(targets.reference)), mcpTools(offered(targets.berth))));
    found.push(...compareSequences('mcp run', 'values', 'LLM tool names', offered(targets.reference).map((t) => t.function.name), offered(targets.berth).map((t) => t.function.name)));

    found.push(...compareSequences('mcp run', 'events', 'kinds', orderOf(ref.events), orderOf(berth.events)));
    const mcpEvents = (events: Record<string, any>[]) => events.filter((e) => e.tool_name === 'echo');
    found.push(...compareShapes('mcp run: the MCP tool call events', mcpEvents(ref.events), mcpEvents(berth.events)));
    // The conversation's agent.mcp_config (the rest of a conversation is the runs suite's to compare).
    const mcpConfig = (info: unknown) => (info as { agent?: { mcp_config?: unknown } }).agent?.mcp_config;
    found.push(...compareShapes('mcp run: create: agent.mcp_config', mcpConfig(ref.create), mcpConfig(berth.create)));
    found.push(...compareShapes('mcp run: conversation after the run: agent.mcp_config', mcpConfig(ref.info), mcpConfig(berth.info)));

    const mcpSpecs = (events: Record<string, any>[]) => (events.find((e) => e.kind === 'SystemPromptEvent')?.tools ?? []).filter((tool: any) => tool.kind === 'MCPToolDefinition');
    found.push(...compareValues('mcp run', 'values', 'SystemPromptEvent.tools: MCPToolDefinition', mcpSpecs(ref.events), mcpSpecs(berth.events)));
    const echo = (events: Record<string, any>[], kind: string) => events.find((e) => e.kind === kind && e.tool_name === 'echo');
    found.push(...compareValues('mcp run', 'values', 'ActionEvent.action', echo(ref.events, 'ActionEvent')?.action, echo(berth.events, 'ActionEvent')?.action));
    found.push(...compareValues('mcp run', 'values', 'ObservationEvent.observation', echo(ref.events, 'ObservationEvent')?.observation, echo(berth.events, 'ObservationEvent')?.observation));
    expect(JSON.stringify(echo(berth.events, 'ObservationEvent')?.observation)).toContain('conformance-mcp');
  });

  it('finds no difference that differences.json does not list, and every one it lists', () => {
    const verdict = judge('mcp', found);
    if (process.env.CONFORMANCE_VERBOSE === '1') console.log(found.map(describeDifference).join('\n'));
    console.log(`mcp: ${found.length} differences found, ${verdict.allowed} allowed by differences.json`);
    expect({ unexpected: verdict.unexpected, stale: verdict.stale }).toEqual({ unexpected: [], stale: [] });
  });
});
