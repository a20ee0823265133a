import { McpCallToolResult, McpCallToolRequestSchema, McpListToolsRequestSchema, McpToolInfo, parseUuid } from '@berth/contracts/executor';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HttpMcpConnection, McpConnection, McpServerError, SseMcpConnection, StdioMcpConnection } from './mcp-connection';

type McpLaunch = z.output<typeof McpListToolsRequestSchema>['launch'];

/** The protocol version Berth's client asks for (a server answers the one it speaks). */
const PROTOCOL_VERSION = '2025-06-18';
const CLIENT_INFO = { name: 'berth', version: '1.0.0' };

/** One running MCP server of a conversation, ready (initialized) or getting ready. */
interface RunningServer {
  launchKey: string;
  connection: McpConnection;
  ready: Promise<void>;
}

/**
 * The MCP servers of this sandbox, per conversation and server name: started on first use (the
 * executor's own children, so they run inside the sandbox, never in the worker), kept while the
 * sandbox lives, stopped with their conversation's session. A server asked for with another launch
 * (its config changed), or that died, is started again.
 */
export class McpServers {
  private readonly running = new Map<string, RunningServer>();

  constructor(
    /** the sandbox's shell environment: a stdio server's base (no executor token, no Berth setting) */
    private readonly shellEnv: Record<string, string>,
    /** resolves a working directory inside the sandbox (created when missing) */
    private readonly workingDir: (dir: string) => Promise<string>,
  ) {}

  async listTools(body: z.output<typeof McpListToolsRequestSchema>): Promise<McpToolInfo[]> {
    const signal = AbortSignal.timeout(body.timeout_ms);
    const server = await this.ready(body, signal);
    const tools: McpToolInfo[] = [];
    let cursor: string | undefined;
    do {
      const page = (await server.connection.request('tools/list', cursor ? { cursor } : {}, signal)) as { tools?: McpToolInfo[]; nextCursor?: string } | null;
      tools.push(...(page?.tools ?? []));
      cursor = page?.nextCursor ?? undefined;
    } while (cursor);
    return tools;
  }

  async callTool(body: z.output<typeof McpCallToolRequestSchema>, abandoned?: AbortSignal): Promise<McpCallToolResult> {
    const timeout = AbortSignal.timeout(body.timeout_ms);
    const signal = abandoned ? AbortSignal.any([timeout, abandoned]) : timeout;
    const server = await this.ready(body, signal);
    try {
      const result = (await server.connection.request('tools/call', { name: body.tool, arguments: body.arguments }, signal)) as McpCallToolResult | null;
      return { content: Array.isArray(result?.content) ? result.content : [], isError: result?.isError === true, ...(result?.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}) };
    } catch (err) {
      if (timeout.aborted) throw new McpServerError(`no answer from MCP tool '${body.tool}' within ${body.timeout_ms / 1000} seconds`, true);
      throw err;
    }
  }

  /** Stops the conversation's servers (its session closed). */
  closeConversation(conversationId: string): void {
    for (const [key, server] of this.running) {
      if (key.startsWith(`${conversationId}/`)) {
        server.connection.close();
        this.running.delete(key);
      }
    }
  }

  closeAll(): void {
    for (const server of this.running.values()) server.connection.close();
    this.running.clear();
  }

  private async ready(body: { conversation_id: string; working_dir: string; server: string; launch: McpLaunch; timeout_ms: number }, signal: AbortSignal): Promise<RunningServer> {
    const key = `${parseUuid(body.conversation_id)}/${body.server}`;
    const launchKey = createHash('sha256').update(JSON.stringify(body.launch)).digest('hex');
    let server = this.running.get(key);
    if (server && (server.launchKey !== launchKey || !server.connection.alive)) {
      server.connection.close();
      this.running.delete(key);
      server = undefined;
    }
    if (!server) {
      const connection = await this.connect(body.launch, body.working_dir);
      server = { launchKey, connection, ready: this.initialize(connection, signal) };
      this.running.set(key, server);
      // A failed start is not kept: the next request tries again.
      const started = server;
      started.ready.catch(() => {
        if (this.running.get(key) === started) this.running.delete(key);
        started.connection.close();
      });
    }
    try {
      await server.ready;
    } catch (err) {
      if (signal.aborted && !(err instanceof McpServerError)) throw new McpServerError(`the MCP server did not start within ${body.timeout_ms / 1000} seconds`, true);
      throw err;
    }
    return server;
  }

  private async connect(launch: McpLaunch, workingDir: string): Promise<McpConnection> {
    if (launch.transport === 'stdio') {
      const cwd = await this.workingDir(launch.cwd ?? workingDir);
      return new StdioMcpConnection(launch.command, launch.args, { cwd, env: { ...this.shellEnv, ...launch.env } });
    }
    return launch.transport === 'sse' ? new SseMcpConnection(launch.url, launch.headers) : new HttpMcpConnection(launch.url, launch.headers);
  }

  /** The handshake: `initialize`, then `notifications/initialized`. */
  private async initialize(connection: McpConnection, signal: AbortSignal): Promise<void> {
    let answer: { protocolVersion?: string } | null;
    try {
      answer = (await connection.request('initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: CLIENT_INFO }, signal)) as { protocolVersion?: string } | null;
    } catch (err) {
      if (signal.aborted) throw new McpServerError('the MCP server did not answer initialize in time', true);
      throw new McpServerError(`the MCP server failed its handshake: ${(err as Error).message}`);
    }
    if (!answer || typeof answer.protocolVersion !== 'string') throw new McpServerError('the MCP server failed its handshake: no protocolVersion in its initialize answer');
    if (connection instanceof HttpMcpConnection) connection.useProtocolVersion(answer.protocolVersion);
    await connection.notify('notifications/initialized');
  }
}
