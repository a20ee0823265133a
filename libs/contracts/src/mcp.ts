import { z } from 'zod';

/**
 * An agent's `mcp_config`, as OpenHands 1.58.2's agent server takes it at conversation create
 * (`Agent.mcp_config: dict[str, MCPServer]`): a map of server name → server, unknown fields refused
 * (the FastMCP wrapper `{"mcpServers": …}` is a 422 there too). A server is a stdio command
 * (`command`, `args`, `env`, `cwd`) or a remote one (`url`, `headers`, `transport` http /
 * streamable-http / sse). `env` and `headers` values may be credentials: they are stored encrypted
 * (SecretVault) and never shown.
 */

/** A server's name becomes a tool-name prefix when there are several: the LLM's function-name alphabet. */
const ServerNameSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'MCP server names are 1-64 letters, digits, _ or -');

const SecretMapSchema = z.record(z.string().min(1).max(256), z.string().max(32_768));

export const MCP_TRANSPORTS = ['stdio', 'http', 'streamable-http', 'sse'] as const;
export type McpTransport = (typeof MCP_TRANSPORTS)[number];

export const McpServerSchema = z
  .strictObject({
    url: z.string().min(1).nullish(),
    transport: z.enum(MCP_TRANSPORTS).nullish(),
    command: z.string().min(1).nullish(),
    args: z.array(z.string()).nullish(),
    env: SecretMapSchema.nullish(),
    cwd: z.string().nullish(),
    description: z.string().nullish(),
    icon: z.string().nullish(),
    timeout: z.number().positive().nullish(),
    sse_read_timeout: z.number().positive().nullish(),
    keep_alive: z.boolean().nullish(),
    headers: SecretMapSchema.nullish(),
    enabled: z.boolean().default(true),
  })
  .superRefine((server, ctx) => {
    const transport = server.transport ?? (server.command ? 'stdio' : server.url ? 'http' : null);
    if (transport === null) ctx.addIssue({ code: 'custom', message: "an MCP server needs 'command' (stdio) or 'url' (remote)" });
    if (transport === 'stdio' && !server.command) ctx.addIssue({ code: 'custom', message: "stdio MCP servers require 'command'" });
    if (transport !== null && transport !== 'stdio' && !server.url) ctx.addIssue({ code: 'custom', message: "remote MCP servers require 'url'" });
    if (server.url) {
      let protocol = '';
      try {
        protocol = new URL(server.url).protocol;
      } catch {
        /* reported below */
      }
      if (protocol !== 'http:' && protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'an MCP server url must be an http(s) URL', path: ['url'] });
    }
  });
export type McpServer = z.output<typeof McpServerSchema>;

export const McpConfigSchema = z.record(ServerNameSchema, McpServerSchema).meta({ id: 'MCPConfig' });
export type McpConfig = z.output<typeof McpConfigSchema>;

/** The transport a server is reached by (FastMCP infers it from `command` / `url` when not given). */
export function mcpTransportOf(server: McpServer): McpTransport {
  return server.transport ?? (server.command ? 'stdio' : 'http');
}

/** The servers that are switched on (`enabled` false keeps a server configured but unused). */
export function enabledMcpServers(config: McpConfig | undefined | null): [string, McpServer][] {
  return Object.entries(config ?? {}).filter(([, server]) => server.enabled !== false);
}

/** A tool as an MCP server lists it (`tools/list`), in the spec's wire spelling. */
export interface McpToolInfo {
  name: string;
  title?: string;
  description?: string;
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
}

/** One content block of a `tools/call` result (text and image are what the SDK keeps). */
export type McpContentBlock = { type: 'text'; text: string } | { type: 'image'; data: string; mimeType: string } | { type: string; [key: string]: unknown };

/** A `tools/call` result. */
export interface McpCallToolResult {
  content: McpContentBlock[];
  isError?: boolean;
  structuredContent?: unknown;
}
