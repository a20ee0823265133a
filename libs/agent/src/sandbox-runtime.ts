import { MCP_SERVER_TIMEOUT_STATUS, McpCallToolResult, McpLaunch, McpToolInfo, ProjectSkillFile } from '@berth/contracts';
import { tenantScope } from '@berth/persistence';
import type { ConversationRunRow } from '@berth/persistence';
import { ExecutorClient, ExecutorError, SandboxHandle, SandboxManager, sandboxRoot, sandboxWorkingDir } from '@berth/sandbox';
import { ConversationPlace, ToolFailure, ToolRuntime } from './agent-runner';
import { McpRuntime, McpTimeout } from './mcp/mcp-tools';

type Json = Record<string, any>;

/** A tool call may run this long beyond its own timeout before the worker gives up on the executor. */
const CALL_MARGIN_MS = 10 * 60_000;
/** The executor bounds an MCP request itself; the worker waits this much longer for its answer. */
const MCP_CALL_MARGIN_MS = 10_000;

/**
 * Runs sandbox tools for the agent loop: finds (or creates) the conversation's sandbox, makes sure
 * its executor runs, and calls it with the sandbox's token, which never leaves the server.
 */
export class SandboxToolRuntime extends ToolRuntime implements McpRuntime {
  constructor(private readonly sandboxes: SandboxManager) {
    super();
  }

  /** The conversation's own tenant: its sandbox is one of that tenant's, never another's. */
  private async handleFor(conversation: ConversationPlace): Promise<SandboxHandle> {
    const owner = tenantScope(conversation.tenantId);
    return this.sandboxes.ensureRunning(owner, await this.sandboxes.sandboxIdFor(owner, conversation));
  }

  async workingDir(conversation: ConversationPlace): Promise<string> {
    const handle = await this.handleFor(conversation);
    return sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir);
  }

  async projectSkillFiles(conversation: ConversationPlace): Promise<ProjectSkillFile[]> {
    const handle = await this.handleFor(conversation);
    const workingDir = sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir);
    return (await new ExecutorClient(handle).projectSkillFiles(workingDir)).files;
  }

  async execute(conversation: ConversationRunRow, tool: string, action: Json, signal: AbortSignal, env?: Record<string, string>): Promise<Json> {
    const handle = await this.handleFor(conversation);
    const client = new ExecutorClient(handle);
    const timeoutMs = CALL_MARGIN_MS + (typeof action.timeout === 'number' ? action.timeout * 1000 : 0);
    try {
      const { observation } = await client.execute(
        {
          conversation_id: conversation.id,
          working_dir: sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir),
          tool,
          action,
          ...(env && Object.keys(env).length ? { env } : {}),
        },
        { signal, timeoutMs },
      );
      return observation;
    } catch (err) {
      if (err instanceof ExecutorError && err.status !== null && err.status < 500) {
        throw new ToolFailure(typeof err.detail === 'string' ? err.detail : JSON.stringify(err.detail));
      }
      throw err;
    } finally {
      await this.sandboxes.touch(tenantScope(conversation.tenantId), handle.id).catch(() => undefined);
    }
  }

  /** MCP servers run inside the sandbox: its executor starts them and speaks to them. */
  async mcpListTools(conversation: ConversationPlace, server: string, launch: McpLaunch, timeoutMs: number): Promise<McpToolInfo[]> {
    return (await this.mcp(conversation, (client, target) => client.mcpListTools({ ...target, server, launch, timeout_ms: timeoutMs }, { timeoutMs: timeoutMs + MCP_CALL_MARGIN_MS }))).tools;
  }

  async mcpCallTool(conversation: ConversationPlace, server: string, launch: McpLaunch, tool: string, args: Json, timeoutMs: number, signal: AbortSignal): Promise<McpCallToolResult> {
    const request = (client: ExecutorClient, target: { conversation_id: string; working_dir: string }) =>
      client.mcpCallTool({ ...target, server, launch, tool, arguments: args, timeout_ms: timeoutMs }, { signal, timeoutMs: timeoutMs + MCP_CALL_MARGIN_MS });
    return (await this.mcp(conversation, request)).result;
  }

  private async mcp<T>(conversation: ConversationPlace, request: (client: ExecutorClient, target: { conversation_id: string; working_dir: string }) => Promise<T>): Promise<T> {
    const handle = await this.handleFor(conversation);
    const workingDir = sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir);
    try {
      return await request(new ExecutorClient(handle), { conversation_id: conversation.id, working_dir: workingDir });
    } catch (err) {
      if (err instanceof ExecutorError && err.status === MCP_SERVER_TIMEOUT_STATUS) throw new McpTimeout(String(err.detail));
      if (err instanceof ExecutorError && err.status !== null) throw new Error(typeof err.detail === 'string' ? err.detail : JSON.stringify(err.detail));
      throw err;
    } finally {
      await this.sandboxes.touch(tenantScope(conversation.tenantId), handle.id).catch(() => undefined);
    }
  }
}
