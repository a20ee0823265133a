import {
  BashEventIdsBodySchema,
  BashEventSearchQuerySchema,
  ExecuteBashRequestSchema,
  FileArchiveQuerySchema,
  FileHomeQuerySchema,
  FilePathQuerySchema,
  GitChangesQuerySchema,
  GitCommitChangesQuerySchema,
  GitCommitsQuerySchema,
  GitDiffQuerySchema,
  GitShaSchema,
  MCP_SERVER_FAILURE_STATUS,
  MCP_SERVER_TIMEOUT_STATUS,
  McpCallToolRequestSchema,
  McpListToolsRequestSchema,
  ProjectSkillsQuerySchema,
  SearchSubdirsQuerySchema,
  executorRoutePattern,
  jsonSyntaxMessage,
  matchExecutorRoute,
  parseUuid,
  uuidHex,
  SANDBOX_TOKEN_HEADER,
} from '@berth/contracts/executor';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { serveBashSocket } from './bash/bash-socket';
import { ExecutorConfig } from './config';
import { HttpError } from './errors';
import { Executor } from './executor';
import { McpServerError } from './mcp/mcp-connection';
import { pathParam, queryOf, readJson, readText, reply, requestPath, validate } from './http';
import { z } from 'zod';
import { logLine } from './log';

/** An MCP server's failure is the caller's to show (MCP_SERVER_FAILURE_STATUS with what happened), not this executor's error. */
async function mcpAnswer<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof McpServerError) throw new HttpError(err.timedOut ? MCP_SERVER_TIMEOUT_STATUS : MCP_SERVER_FAILURE_STATUS, err.message);
    throw err;
  }
}

/** Constant-time token check (both sides hashed, so lengths leak nothing either). */
export function tokenMatches(offered: string, expected: string): boolean {
  const a = createHash('sha256').update(offered, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && offered.length === expected.length;
}

interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  /** Captures of the route's pattern. */
  params: string[];
}

interface Route {
  pattern: RegExp;
  methods: Record<string, (call: Call) => Promise<void>>;
}

const CommitPathSchema = z.object({ sha: GitShaSchema });

/**
 * The executor's HTTP API (plain node:http, to start fast and stay small): `GET /health` (open),
 * and with the sandbox token the tool calls of the worker (`/api/tools/execute`,
 * `/api/sessions/{id}/close`), the workspace API with OpenHands' paths and bodies (`/api/file/*`,
 * `/api/bash/*`, `/api/git/*`, `WS /sockets/bash-events`) that the gateway passes through, and
 * `GET /api/activity` for the idle clock.
 */
/** What serves one sandbox: its HTTP requests, its WebSocket upgrades, and what to end on close. */
export interface ExecutorHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

export function createExecutorServer(config: ExecutorConfig, executor: Executor): Server {
  return serve(executorHandlers(config, executor));
}

/** An HTTP server for `handlers` (long tool calls and uploads are normal: only headers are timed). */
function serve(handlers: ExecutorHandlers): Server {
  const server = createServer((req, res) => handlers.request(req, res));
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => handlers.upgrade(req, socket, head));
  server.on('close', () => handlers.close());
  return server;
}

/**
 * A pre-started executor of the warm pool (BERTH_EXECUTOR_DORMANT=1): up and listening but serving
 * no sandbox until the driver's `POST /api/init` (with the token it was started with) names one;
 * from then on it is that sandbox's executor. The slow part of a start — the process and its
 * modules — is done before anyone asks for a sandbox.
 */
export function createDormantExecutorServer(token: string, init: (body: unknown) => Promise<ExecutorHandlers>): Server {
  let live: ExecutorHandlers | undefined;
  let initializing = false;
  const authorized = (req: IncomingMessage) => {
    const offered = req.headers[SANDBOX_TOKEN_HEADER];
    return typeof offered === 'string' && tokenMatches(offered, token);
  };
  const dormant = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = requestPath(req.url);
    if (path !== null && matchExecutorRoute('health', path)) return reply(res, 200, { status: 'ok' });
    if (!authorized(req)) return reply(res, 401, { detail: 'Unauthorized' });
    if (path === null || !matchExecutorRoute('init', path)) return reply(res, 503, { detail: 'This executor serves no sandbox yet' });
    if (req.method !== 'POST') return reply(res, 405, { detail: 'Method Not Allowed' });
    if (initializing) return reply(res, 409, { detail: 'Already initializing' });
    initializing = true;
    try {
      live = await init(await readJson(req, DORMANT_MAX_BODY_BYTES));
    } finally {
      initializing = false;
    }
    reply(res, 200, { status: 'ready' });
  };
  return serve({
    request: (req, res) => {
      if (live) return live.request(req, res);
      dormant(req, res).catch((err: unknown) => {
        if (err instanceof HttpError) return reply(res, err.status, { detail: err.detail });
        logLine('error', 'initialization failed', err);
        reply(res, 500, { detail: 'Initialization failed' });
      });
    },
    upgrade: (req, socket, head) => {
      if (live) return live.upgrade(req, socket, head);
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    },
    close: () => live?.close(),
  });
}

const DORMANT_MAX_BODY_BYTES = 1024 * 1024;

/** The request handlers of a sandbox's executor. */
export function executorHandlers(config: ExecutorConfig, executor: Executor): ExecutorHandlers {
  const ok = (call: Call, body: unknown) => reply(call.res, 200, body);
  const download = async (call: Call) => {
    const { path } = validate(FilePathQuerySchema, queryOf(call.query), 'query');
    await executor.files.download(call.req, call.res, path);
  };

  const routes: Route[] = [
    {
      pattern: executorRoutePattern('toolsExecute'),
      methods: {
        POST: async ({ req, res }) => {
          const body = await readJson(req, config.maxBodyBytes);
          // The caller hanging up before the answer (an interrupt, a worker gone) abandons the call.
          const abandoned = new AbortController();
          res.once('close', () => {
            if (!res.writableFinished) abandoned.abort();
          });
          reply(res, 200, await executor.execute(body, abandoned.signal));
        },
      },
    },
    {
      pattern: executorRoutePattern('mcpTools'),
      methods: {
        POST: async (call) => {
          const body = validate(McpListToolsRequestSchema, await readJson(call.req, config.maxBodyBytes), 'body');
          ok(call, { tools: await mcpAnswer(executor.activity.during(executor.mcp.listTools(body))) });
        },
      },
    },
    {
      pattern: executorRoutePattern('mcpCall'),
      methods: {
        POST: async ({ req, res }) => {
          const body = validate(McpCallToolRequestSchema, await readJson(req, config.maxBodyBytes), 'body');
          const abandoned = new AbortController();
          res.once('close', () => {
            if (!res.writableFinished) abandoned.abort(new Error('the caller hung up'));
          });
          // A long MCP call keeps the sandbox from looking idle.
          reply(res, 200, { result: await mcpAnswer(executor.activity.during(executor.mcp.callTool(body, abandoned.signal))) });
        },
      },
    },
    {
      pattern: executorRoutePattern('sessionClose'),
      methods: {
        POST: async (call) => {
          let id: string;
          try {
            id = decodeURIComponent(call.params[0]);
          } catch {
            throw new HttpError(422, 'conversation_id must be a UUID');
          }
          executor.closeConversation(id);
          ok(call, { success: true });
        },
      },
    },
    {
      pattern: executorRoutePattern('projectSkills'),
      methods: { GET: async (call) => ok(call, await executor.projectSkills.read(validate(ProjectSkillsQuerySchema, queryOf(call.query), 'query').working_dir)) },
    },
    {
      pattern: executorRoutePattern('activity'),
      methods: { GET: async (call) => ok(call, executor.activity.snapshot(executor.bash.runningCount, executor.runningTerminals)) },
    },

    // Files (§3.5)
    {
      pattern: executorRoutePattern('fileUpload'),
      methods: {
        POST: async (call) => {
          const { path } = validate(FilePathQuerySchema, queryOf(call.query), 'query');
          ok(call, await executor.files.upload(call.req, path));
        },
      },
    },
    {
      pattern: executorRoutePattern('fileDownload'),
      methods: { GET: download, HEAD: download },
    },
    {
      pattern: executorRoutePattern('fileCreateDirectory'),
      methods: {
        POST: async (call) => {
          const { path } = validate(FilePathQuerySchema, queryOf(call.query), 'query');
          ok(call, await executor.files.createDirectory(path));
        },
      },
    },
    {
      pattern: executorRoutePattern('fileSearchSubdirs'),
      methods: { GET: async (call) => ok(call, await executor.files.searchSubdirs(validate(SearchSubdirsQuerySchema, queryOf(call.query), 'query'))) },
    },
    {
      pattern: executorRoutePattern('fileArchive'),
      methods: {
        GET: async (call) => executor.archives.archive(call.res, validate(FileArchiveQuerySchema, queryOf(call.query, ['exclude']), 'query')),
      },
    },
    {
      pattern: executorRoutePattern('fileHome'),
      methods: {
        GET: async (call) => {
          const { include_hidden } = validate(FileHomeQuerySchema, queryOf(call.query), 'query');
          ok(call, await executor.files.home(include_hidden ?? false));
        },
      },
    },

    // Bash (§3.4, §7.1)
    {
      pattern: executorRoutePattern('bashStartCommand'),
      methods: {
        POST: async (call) => {
          const request = validate(ExecuteBashRequestSchema, await readJson(call.req, config.maxBodyBytes), 'body');
          ok(call, (await executor.bash.start(request)).command);
        },
      },
    },
    {
      pattern: executorRoutePattern('bashExecuteCommand'),
      methods: {
        POST: async (call) => {
          const request = validate(ExecuteBashRequestSchema, await readJson(call.req, config.maxBodyBytes), 'body');
          ok(call, await (await executor.bash.start(request)).done);
        },
      },
    },
    {
      pattern: executorRoutePattern('bashEventsSearch'),
      methods: {
        GET: async (call) => ok(call, await executor.bashEvents.search(validate(BashEventSearchQuerySchema, queryOf(call.query), 'query'))),
      },
    },
    {
      pattern: executorRoutePattern('bashEvents'),
      methods: {
        GET: async (call) => {
          const text = await readText(call.req, config.maxBodyBytes);
          let ids: unknown;
          if (text.trim() !== '') {
            try {
              ids = JSON.parse(text);
            } catch (err) {
              throw new HttpError(400, `The request body is not valid JSON: ${jsonSyntaxMessage((err as Error).message)}`);
            }
          } else if (call.query.has('event_ids')) {
            ids = call.query.getAll('event_ids');
          }
          if (ids === undefined) throw new HttpError(422, [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }]);
          const wanted = validate(BashEventIdsBodySchema, ids, 'body');
          ok(
            call,
            await Promise.all(
              wanted.map((id) => {
                const uuid = parseUuid(id);
                return uuid ? executor.bashEvents.get(uuidHex(uuid)) : null;
              }),
            ),
          );
        },
        DELETE: async (call) => ok(call, { cleared_count: await executor.bashEvents.clear() }),
      },
    },
    {
      pattern: executorRoutePattern('bashCommandStop'),
      methods: {
        POST: async (call) => {
          const raw = pathParam(call.params[0]) ?? call.params[0];
          const uuid = parseUuid(raw);
          if (!uuid) throw new HttpError(422, [{ type: 'uuid_parsing', loc: ['path', 'command_id'], msg: 'Input should be a valid UUID', input: raw }]);
          const id = uuidHex(uuid);
          // Stopping a finished command succeeds; an unknown one is 404.
          if ((await executor.bash.stop(id)) || (await executor.bashEvents.get(id))) return ok(call, { success: true });
          throw new HttpError(404, 'Not Found');
        },
      },
    },
    {
      pattern: executorRoutePattern('bashEvent'),
      methods: {
        GET: async (call) => {
          let raw: string;
          try {
            raw = decodeURIComponent(call.params[0]);
          } catch {
            throw new HttpError(404, 'Not Found');
          }
          const uuid = parseUuid(raw);
          const event = uuid ? await executor.bashEvents.get(uuidHex(uuid)) : null;
          if (!event) throw new HttpError(404, 'Not Found');
          ok(call, event);
        },
      },
    },

    // Git (§3.6)
    {
      pattern: executorRoutePattern('gitChanges'),
      methods: {
        GET: async (call) => {
          const { path, ref } = validate(GitChangesQuerySchema, queryOf(call.query), 'query');
          ok(call, await executor.git.changes(path, ref));
        },
      },
    },
    {
      pattern: executorRoutePattern('gitDiff'),
      methods: {
        GET: async (call) => {
          const { path, ref, commit } = validate(GitDiffQuerySchema, queryOf(call.query), 'query');
          if (ref !== undefined && commit !== undefined) throw new HttpError(400, "'ref' and 'commit' are mutually exclusive");
          ok(call, await executor.git.diff(path, ref, commit));
        },
      },
    },
    {
      pattern: executorRoutePattern('gitCommits'),
      methods: {
        GET: async (call) => {
          const { path, limit } = validate(GitCommitsQuerySchema, queryOf(call.query), 'query');
          ok(call, await executor.git.commits(path, limit));
        },
      },
    },
    {
      pattern: executorRoutePattern('gitCommitChanges'),
      methods: {
        GET: async (call) => {
          // Hex only: a sha can never reach git's argv as an option.
          const { sha } = validate(CommitPathSchema, { sha: pathParam(call.params[0]) ?? call.params[0] }, 'path');
          const { path } = validate(GitCommitChangesQuerySchema, queryOf(call.query), 'query');
          ok(call, await executor.git.commitChanges(path, sha));
        },
      },
    },
  ];

  const request = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return reply(res, err.status, { detail: err.detail });
      logLine('error', 'request failed', err);
      reply(res, 500, { detail: 'Internal Server Error' });
    });
  };

  function authorized(req: IncomingMessage): boolean {
    const offered = req.headers[SANDBOX_TOKEN_HEADER];
    return typeof offered === 'string' && tokenMatches(offered, config.token);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://executor');
    // Routes match the path as sent, never one with its dot segments resolved.
    const path = requestPath(req.url);
    if (path === null) return reply(res, 404, { detail: 'Not Found' });
    if (matchExecutorRoute('health', path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, { detail: 'Method Not Allowed' });
      return reply(res, 200, { status: 'ok' });
    }
    if (!authorized(req)) return reply(res, 401, { detail: 'Unauthorized' });
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      const handler = route.methods[req.method ?? 'GET'];
      if (!handler) return reply(res, 405, { detail: 'Method Not Allowed' });
      if (!matchExecutorRoute('activity', path)) executor.activity.touch();
      return handler({ req, res, query: url.searchParams, params: match.slice(1) });
    }
    return reply(res, 404, { detail: 'Not Found' });
  }

  // WebSockets: the upgrade carries the token in the same header (the gateway adds it).
  const sockets = new WebSocketServer({ noServer: true, maxPayload: config.maxBodyBytes });
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, text: string) => {
      const body = JSON.stringify({ detail: text });
      socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    socket.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'http://executor');
    if (!authorized(req)) return refuse(401, 'Unauthorized');
    const path = requestPath(req.url);
    if (path === null || !matchExecutorRoute('bashEventsSocket', path)) return refuse(404, 'Not Found');
    sockets.handleUpgrade(req, socket, head, (ws) => serveBashSocket(ws, url.searchParams, executor.bash, executor.bashEvents, executor.activity));
  };
  const close = () => {
    for (const client of sockets.clients) client.terminate();
  };

  return { request, upgrade, close };
}
