import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { parseUuid } from './ids';
import type { McpCallToolResult, McpToolInfo } from './mcp';
import { ENV_VAR_NAME_RE, ExecuteToolRequestSchema } from './tools';

/**
 * The protocol between the control plane (the worker's tool calls, the gateway's workspace proxy,
 * the drivers, the idle clock) and a sandbox's executor: its header, every path it serves, and the
 * shapes of what it is sent and answers. The executor's server and every caller name paths only
 * through this module.
 */

/** The header carrying a sandbox's token (`X-Sandbox-Token`), in node:http's lower-case spelling; every path but `health` requires it. */
export const SANDBOX_TOKEN_HEADER = 'x-sandbox-token';

/** Every path an executor serves; `{name}` is one path segment. */
export const EXECUTOR_PATHS = {
  /** GET, open: `{"status":"ok"}` */
  health: '/health',
  /** POST `ExecutorInitRequest`: a dormant (warm-pool) executor becomes a sandbox's; answers `{"status":"ready"}` */
  init: '/api/init',
  /** POST `ExecuteToolCall` → `ExecuteToolResponse` (the worker's tool calls) */
  toolsExecute: '/api/tools/execute',
  /** POST `McpListToolsRequest` → `McpListToolsResponse`: starts (or reuses) one of the conversation's MCP servers, lists its tools */
  mcpTools: '/api/mcp/tools',
  /** POST `McpCallToolRequest` → `McpCallToolResponse`: calls one tool of one (started on demand) MCP server */
  mcpCall: '/api/mcp/call',
  /** POST: ends a conversation's session (its terminal, its MCP servers) */
  sessionClose: '/api/sessions/{conversation_id}/close',
  /** GET → `SandboxActivity` (the idle clock's question; not itself activity) */
  activity: '/api/activity',
  /** GET `?working_dir=` → `ProjectSkillFiles`: the files the SDK's `load_project_skills` reads (the worker parses them) */
  projectSkills: '/api/skills/project',
  // The workspace API, with OpenHands' paths and bodies, that the gateway passes through.
  fileUpload: '/api/file/upload',
  fileDownload: '/api/file/download',
  fileCreateDirectory: '/api/file/create_directory',
  fileSearchSubdirs: '/api/file/search_subdirs',
  fileArchive: '/api/file/archive',
  fileHome: '/api/file/home',
  bashStartCommand: '/api/bash/start_bash_command',
  bashExecuteCommand: '/api/bash/execute_bash_command',
  bashEventsSearch: '/api/bash/bash_events/search',
  bashEvents: '/api/bash/bash_events',
  bashEvent: '/api/bash/bash_events/{event_id}',
  bashCommandStop: '/api/bash/bash_commands/{command_id}/stop',
  gitChanges: '/api/git/changes',
  gitDiff: '/api/git/diff',
  gitCommits: '/api/git/commits',
  gitCommitChanges: '/api/git/commits/{sha}/changes',
  /** WebSocket upgrade: a sandbox's bash events (contract §4.2) */
  bashEventsSocket: '/sockets/bash-events',
} as const;

export type ExecutorPathName = keyof typeof EXECUTOR_PATHS;

/** Declared with a trailing slash by OpenHands (§0): the bare form answers the same. */
const TRAILING_SLASH: ReadonlySet<ExecutorPathName> = new Set<ExecutorPathName>(['bashEventsSearch', 'bashEvents']);

/** Where OpenHands mounts the workspace routes both at the top and per conversation (`/api/conversations/{id}/<route>`). */
export const EXECUTOR_API_PREFIX = '/api/';

/** The workspace routes clients reach through the gateway (`/sandboxes/{id}/…`, or routed by path). */
export const PUBLIC_WORKSPACE_ROUTES: readonly ExecutorPathName[] = [
  'fileUpload',
  'fileDownload',
  'fileCreateDirectory',
  'fileArchive',
  'fileHome',
  'fileSearchSubdirs',
  'bashStartCommand',
  'bashExecuteCommand',
  'bashEventsSearch',
  'bashEvents',
  'bashEvent',
  'bashCommandStop',
  'gitChanges',
  'gitDiff',
  'gitCommits',
  'gitCommitChanges',
];

/** What OpenHands' runtime router mounts under `/api/conversations/{id}/`: the public routes but the folder picker's. */
export const CONVERSATION_WORKSPACE_ROUTES: readonly ExecutorPathName[] = PUBLIC_WORKSPACE_ROUTES.filter((name) => name !== 'fileHome' && name !== 'fileSearchSubdirs');

/** A path no route serves: with the right token it answers 404, without 401 (whether an executor holds a token). */
export const EXECUTOR_TOKEN_PROBE_PATH = '/api/token-probe';

const patterns = new Map<ExecutorPathName, RegExp>(
  (Object.keys(EXECUTOR_PATHS) as ExecutorPathName[]).map((name) => {
    const body = EXECUTOR_PATHS[name]
      .split(/(\{[a-z_]+\})/)
      .map((part) => (part.startsWith('{') ? '([^/]+)' : part.replace(/[.*+?^$()|[\]\\/]/g, '\\$&')))
      .join('');
    return [name, new RegExp(`^${body}${TRAILING_SLASH.has(name) ? '\\/?' : ''}$`)];
  }),
);

/** The pattern of a route's path (as sent: no decoding), its `{…}` segments captured in order. */
export function executorRoutePattern(name: ExecutorPathName): RegExp {
  return patterns.get(name)!;
}

/** The `{…}` segments of `path` (still encoded) when it is that route's, else null. */
export function matchExecutorRoute(name: ExecutorPathName, path: string): string[] | null {
  return executorRoutePattern(name).exec(path)?.slice(1) ?? null;
}

/** Which of `names` `path` is (the first that matches), or null. */
export function executorRouteOf(path: string, names: readonly ExecutorPathName[]): ExecutorPathName | null {
  return names.find((name) => executorRoutePattern(name).test(path)) ?? null;
}

/** The path (and query) to call: `{…}` segments filled in encoded, the query appended when given. */
export function executorPath(name: ExecutorPathName, segments: Record<string, string> = {}, query?: Record<string, string> | URLSearchParams | string): string {
  const path = EXECUTOR_PATHS[name].replace(/\{([a-z_]+)\}/g, (_, key: string) => {
    if (segments[key] === undefined) throw new Error(`executor path ${name} needs ${key}`);
    return encodeURIComponent(segments[key]);
  });
  const search = query === undefined ? '' : typeof query === 'string' ? query : new URLSearchParams(query).toString();
  return search ? `${path}?${search}` : path;
}

/** `POST /api/init`: the sandbox's folder (absolute) and its variables (names starting with BERTH_ are the executor's own: dropped). */
export const ProjectSkillsQuerySchema = z.looseObject({
  working_dir: z.string().min(1).max(4096).refine((p) => isAbsolute(p), 'working_dir must be absolute'),
});

/**
 * One file a project skill may come from. `skills_dir`: the skills folder it lies under (its name
 * is its path relative to it), or null for a third-party instruction file (AGENTS.md, .cursorrules…).
 */
export interface ProjectSkillFile {
  path: string;
  skills_dir: string | null;
  content: string;
}
export interface ProjectSkillFiles {
  files: ProjectSkillFile[];
}

export const ExecutorInitRequestSchema = z.object({
  root: z.string().refine((root) => isAbsolute(root), { message: 'root must be an absolute path' }),
  env: z.record(z.string(), z.string()).default({}),
});
export type ExecutorInitRequest = z.input<typeof ExecutorInitRequestSchema>;

/** `POST /api/tools/execute`'s body as sent (the executor parses it with ExecuteToolRequestSchema: an unknown tool is its 422). */
export type ExecuteToolCall = z.input<typeof ExecuteToolRequestSchema>;

/** `GET /health`'s answer. */
export interface ExecutorHealth {
  status: string;
}

/**
 * How the executor reaches one MCP server of a conversation: a stdio command it starts as its own
 * child inside the sandbox (the sandbox's shell environment plus `env`; `cwd` inside the sandbox,
 * the conversation's working dir when not given), or a remote server it calls from the sandbox.
 */
export const McpLaunchSchema = z.discriminatedUnion('transport', [
  z.strictObject({
    transport: z.literal('stdio'),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string().regex(ENV_VAR_NAME_RE, 'env names must be shell variable names'), z.string().refine((v) => !v.includes('\0'), { message: 'env values cannot contain NUL' })).default({}),
    cwd: z.string().min(1).nullish(),
  }),
  z.strictObject({
    transport: z.enum(['http', 'sse']),
    url: z.url({ protocol: /^https?$/ }),
    headers: z.record(z.string().min(1), z.string()).default({}),
  }),
]);
export type McpLaunch = z.input<typeof McpLaunchSchema>;

const mcpTarget = {
  conversation_id: z.string().refine((v) => parseUuid(v) !== null, { message: 'conversation_id must be a UUID' }),
  working_dir: z.string().refine((v) => isAbsolute(v), { message: 'working_dir must be an absolute path' }),
  /** the server's name in the agent's mcp_config */
  server: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  launch: McpLaunchSchema,
  /** bounds the whole request: start, handshake and the call */
  timeout_ms: z.number().int().min(1).max(3_600_000),
};

/** `POST /api/mcp/tools`: the server is started when it is not running (or runs another launch), then `tools/list`ed. */
export const McpListToolsRequestSchema = z.strictObject(mcpTarget);
export type McpListToolsRequest = z.input<typeof McpListToolsRequestSchema>;
export interface McpListToolsResponse {
  tools: McpToolInfo[];
}

/** `POST /api/mcp/call`: `tools/call` of `tool` with `arguments` (a server that died is started again first). */
export const McpCallToolRequestSchema = z.strictObject({ ...mcpTarget, tool: z.string().min(1), arguments: z.record(z.string(), z.unknown()).default({}) });
export type McpCallToolRequest = z.input<typeof McpCallToolRequestSchema>;
export interface McpCallToolResponse {
  result: McpCallToolResult;
}

/** The status an MCP server's failure (it cannot start, dies, errs, or does not answer in time) is answered with; `detail` says what happened. */
export const MCP_SERVER_FAILURE_STATUS = 502;
/** The status of an MCP request that did not finish within its `timeout_ms`. */
export const MCP_SERVER_TIMEOUT_STATUS = 504;
