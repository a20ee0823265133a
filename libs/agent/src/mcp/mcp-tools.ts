import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { enabledMcpServers, McpCallToolResult, McpConfigSchema, McpLaunch, mcpTransportOf, McpServer, McpToolInfo, naiveTimestamp, newUuid, OHEvent } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import type { ConversationPlace } from '../agent-runner';
import { AgentTool } from '../agent-tools';
import { checkMcpArguments, mcpToolDefinitionJson, mcpToolParameters } from './mcp-schema';

type Json = Record<string, any>;

/** How long listing a server's tools may take, start and handshake included (the SDK's `_RUNTIME_MCP_TIMEOUT_SECS`). */
export const MCP_DISCOVERY_TIMEOUT_MS = 30_000;
/** How long one MCP tool call may take unless its server's `timeout` says (the SDK's `MCP_TOOL_TIMEOUT_SECONDS`). */
export const MCP_TOOL_TIMEOUT_SECONDS = 300;

/** Where MCP servers run: the conversation's sandbox (its executor starts and calls them). */
export interface McpRuntime {
  mcpListTools(conversation: ConversationPlace, server: string, launch: McpLaunch, timeoutMs: number): Promise<McpToolInfo[]>;
  /** Throws McpTimeout when the tool did not answer within `timeoutMs`. */
  mcpCallTool(conversation: ConversationPlace, server: string, launch: McpLaunch, tool: string, args: Json, timeoutMs: number, signal: AbortSignal): Promise<McpCallToolResult>;
}

/** A call that did not finish in time (the runtime's timeout). */
export class McpTimeout extends Error {}

/** The launch the executor gets for a server: its transport and only what that transport uses. */
function launchOf(server: McpServer): McpLaunch {
  const transport = mcpTransportOf(server);
  if (transport === 'stdio') return { transport, command: server.command!, args: server.args ?? [], env: server.env ?? {}, ...(server.cwd ? { cwd: server.cwd } : {}) };
  return { transport: transport === 'sse' ? 'sse' : 'http', url: server.url!, headers: server.headers ?? {} };
}

/** Every credential of a launch, hidden wherever a server's words could repeat it (its stderr, an error). */
function hideCredentials(text: string, launch: McpLaunch): string {
  const secrets: Record<string, string> = (launch.transport === 'stdio' ? launch.env : launch.headers) ?? {};
  const values = Object.values(secrets).filter((v) => v.length >= 3);
  return values.sort((a, b) => b.length - a.length).reduce((out, value) => out.split(value).join('<secret-hidden>'), text);
}

function text(value: string) {
  return { cache_prompt: false, type: 'text', text: value };
}

/** `MCPToolObservation.from_call_tool_result`: a header line, then the text and image blocks (`hide` masks the text). */
export function mcpObservation(toolName: string, result: McpCallToolResult, hide: (text: string) => string = (t) => t): Json {
  const content: Json[] = [text(`[Tool '${toolName}' executed.]`)];
  for (const block of result.content ?? []) {
    if (block.type === 'text' && typeof block.text === 'string') content.push(text(hide(block.text)));
    else if (block.type === 'image' && typeof block.data === 'string') content.push({ cache_prompt: false, type: 'image', image_urls: [`data:${block.mimeType};base64,${block.data}`] });
  }
  return { content, is_error: result.isError === true, tool_name: toolName, kind: 'MCPToolObservation' };
}

/** `MCPToolObservation.from_text(…, is_error=True)`. */
export function mcpErrorObservation(toolName: string, message: string): Json {
  return { content: [text(message)], is_error: true, tool_name: toolName, kind: 'MCPToolObservation' };
}

/** At most this many conversations' tool lists are kept per process. */
const CACHE_LIMIT = 500;

/** One tool a server listed: where it is, its name there, and how the LLM sees it (`info.name` prefixed when there are several servers). */
interface DiscoveredTool {
  server: string;
  launch: McpLaunch;
  timeoutSeconds: number;
  serverToolName: string;
  info: McpToolInfo;
}

/** Shows a conversation's subscribers an event that is not stored (a ServerErrorEvent). */
export type McpErrorReport = (conversationId: string, event: OHEvent) => Promise<void>;

/**
 * The agent's `mcp_config` servers as tools, as OpenHands' `create_mcp_tools` makes them: each server
 * started in the conversation's sandbox and asked for its tools when the agent gets ready; a tool
 * keeps its server's name when there is one server, and is `<server>_<tool>` when there are several
 * (FastMCP's mounting prefix). A server that fails is left out and the conversation goes on, as the
 * SDK does; its failure is logged and shown live as a ServerErrorEvent (the agent server's event for
 * "MCP connection failures"; not stored). A conversation's list is cached per configuration once
 * every server answered; the executor keeps the servers running.
 */
export class McpToolSource {
  private readonly logger = new Logger('McpTools');
  private readonly cache = new Map<string, Promise<DiscoveredTool[]>>();

  constructor(
    private readonly runtime: McpRuntime,
    private readonly vault: SecretVault,
    private readonly report: McpErrorReport | null = null,
  ) {}

  async toolsFor(conversation: ConversationPlace & { agent: unknown }): Promise<AgentTool[]> {
    const sealed = (conversation.agent as Json)?.mcp_config;
    if (!sealed || !Object.keys(sealed).length) return [];
    const key = `${conversation.id}/${createHash('sha256').update(JSON.stringify(sealed)).digest('hex')}`;
    let discovered = this.cache.get(key);
    if (!discovered) {
      const discovery = this.discover(conversation, this.vault.openAgent({ mcp_config: sealed }).mcp_config);
      discovered = discovery.then((found) => found.tools);
      this.cache.set(key, discovered);
      if (this.cache.size > CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
      // Only a full answer is kept: a server that failed is asked again next time.
      void discovery.then((found) => found.failed && this.cache.delete(key)).catch(() => this.cache.delete(key));
    }
    // Bound to the conversation as the caller has it now (its sandbox may have changed since discovery).
    return (await discovered).map((found) => this.tool(conversation, found));
  }

  private async discover(conversation: ConversationPlace, rawConfig: unknown): Promise<{ tools: DiscoveredTool[]; failed: boolean }> {
    const parsed = McpConfigSchema.safeParse(rawConfig);
    if (!parsed.success) {
      this.logger.warn(`conversation ${conversation.id}: its mcp_config is not valid; no MCP tools`);
      return { tools: [], failed: true };
    }
    const servers = enabledMcpServers(parsed.data);
    const prefixed = servers.length > 1;
    const listed = await Promise.all(
      servers.map(async ([name, server]) => {
        const launch = launchOf(server);
        try {
          return { name, launch, timeout: server.timeout ?? MCP_TOOL_TIMEOUT_SECONDS, failed: false, tools: await this.runtime.mcpListTools(conversation, name, launch, MCP_DISCOVERY_TIMEOUT_MS) };
        } catch (err) {
          // As the SDK: the conversation goes on without this server's tools.
          const detail = `MCP server '${name}' failed to start; continuing without its tools: ${hideCredentials((err as Error).message, launch)}`;
          this.logger.warn(`conversation ${conversation.id}: ${detail}`);
          const event: OHEvent = { id: newUuid(), timestamp: naiveTimestamp(), source: 'environment', code: 'MCPError', detail, kind: 'ServerErrorEvent' };
          await this.report?.(conversation.id, event).catch(() => undefined);
          return { name, launch, timeout: 0, tools: [], failed: true };
        }
      }),
    );
    const out: DiscoveredTool[] = [];
    for (const { name: server, launch, timeout, tools } of listed) {
      for (const info of tools) {
        const exposed = { ...info, name: prefixed ? `${server}_${info.name}` : info.name };
        if (out.some((t) => t.info.name === exposed.name)) continue;
        out.push({ server, launch, timeoutSeconds: timeout, serverToolName: info.name, info: exposed });
      }
    }
    return { tools: out, failed: listed.some((server) => server.failed) };
  }

  private tool(conversation: ConversationPlace, { server, launch, timeoutSeconds, serverToolName, info }: DiscoveredTool): AgentTool {
    const name = info.name;
    return {
      name,
      definition: { type: 'function', function: { name, description: info.description || 'No description provided', parameters: mcpToolParameters(info) } },
      spec: mcpToolDefinitionJson(info),
      actionKind: 'MCPToolAction',
      observationKind: 'MCPToolObservation',
      inSandbox: true,
      readOnly: info.annotations?.readOnlyHint === true,
      parse: (args: unknown) => {
        const { summary: _summary, security_risk: _risk, ...rest } = (args && typeof args === 'object' ? args : {}) as Json;
        const checked = checkMcpArguments(info, args && typeof args === 'object' && !Array.isArray(args) ? rest : args);
        return 'error' in checked ? checked : { action: { data: checked.data } };
      },
      execute: async (action: Json, signal: AbortSignal) => {
        const hide = (message: string) => hideCredentials(message, launch);
        try {
          const result = await this.runtime.mcpCallTool(conversation, server, launch, serverToolName, (action.data as Json) ?? {}, timeoutSeconds * 1000, signal);
          return mcpObservation(name, result, hide);
        } catch (err) {
          if (signal.aborted) throw err;
          if (err instanceof McpTimeout) {
            return mcpErrorObservation(
              name,
              `MCP tool '${name}' timed out after ${timeoutSeconds} seconds. The tool server may be unresponsive or the operation is taking too long. Consider retrying or using an alternative approach.`,
            );
          }
          return mcpErrorObservation(name, `Error calling MCP tool ${name}: ${hideCredentials((err as Error).message, launch)}`);
        }
      },
    };
  }
}
