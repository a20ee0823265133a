import { request as httpRequest, RequestOptions } from 'node:http';
import { EXECUTOR_TOKEN_PROBE_PATH, executorPath, SANDBOX_TOKEN_HEADER } from '@berth/contracts';
import type {
  ExecuteToolCall,
  ExecuteToolResponse,
  ExecutorHealth,
  ExecutorInitRequest,
  McpCallToolRequest,
  McpCallToolResponse,
  McpListToolsRequest,
  McpListToolsResponse,
  ProjectSkillFiles,
  SandboxActivity,
} from '@berth/contracts';

/** The protocol's header, where the drivers and their tests already look for it. */
export { SANDBOX_TOKEN_HEADER };

/**
 * Where an executor listens and the token it accepts (a `SandboxHandle` is one). `url` is
 * `unix:<socket path>` (the local driver's executors: no TCP port) or `http://host:port`.
 */
export interface ExecutorAddress {
  url: string;
  token: string;
}

const UNIX_PREFIX = 'unix:';

/** The executor's unix socket, or null for an http:// address. */
export function executorSocket(url: string): string | null {
  return url.startsWith(UNIX_PREFIX) ? url.slice(UNIX_PREFIX.length) : null;
}

/** node:http options for `pathAndQuery` (starting with `/`) at an executor's address. */
export function executorRequestOptions(url: string, pathAndQuery: string): RequestOptions {
  const socketPath = executorSocket(url);
  if (socketPath) return { socketPath, path: pathAndQuery, host: 'sandbox' };
  const base = new URL(url);
  return { protocol: base.protocol, hostname: base.hostname, port: base.port, path: `${base.pathname.replace(/\/+$/, '')}${pathAndQuery}` };
}

/** The `ws` library's address of a WebSocket path at an executor (`ws+unix:<socket>:<path>` for a socket). */
export function executorWebSocketUrl(url: string, pathAndQuery: string): string {
  const socketPath = executorSocket(url);
  return socketPath ? `ws+unix:${socketPath}:${pathAndQuery}` : `${url.replace(/\/+$/, '').replace(/^http/, 'ws')}${pathAndQuery}`;
}

export interface ExecutorCallOptions {
  /** Aborts the call (an interrupt); the call then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
  /** An answer longer than this fails with 413 (read whole otherwise). */
  maxResponseBytes?: number;
}

/** An executor answered with an error (`status`), or not at all (`status` null: unreachable or timed out). */
export class ExecutorError extends Error {
  constructor(
    readonly status: number | null,
    readonly detail: unknown,
  ) {
    super(`executor ${status === null ? 'unavailable' : `answered ${status}`}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
    this.name = 'ExecutorError';
  }
}

const DEFAULT_TIMEOUT_MS = 120_000;

/** Calls one sandbox's executor with its token, on the paths of the executor protocol (@berth/contracts). */
export class ExecutorClient {
  private readonly timeoutMs: number;

  constructor(
    private readonly address: ExecutorAddress,
    options: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  health(options: ExecutorCallOptions = {}): Promise<ExecutorHealth> {
    return this.call('GET', executorPath('health'), undefined, options) as Promise<ExecutorHealth>;
  }

  /** Whether the executor at this address is the one holding this token (an answer other than 401). */
  async acceptsToken(options: ExecutorCallOptions = {}): Promise<boolean> {
    try {
      await this.call('GET', EXECUTOR_TOKEN_PROBE_PATH, undefined, options);
      return true;
    } catch (err) {
      if (err instanceof ExecutorError && err.status !== null) return err.status !== 401;
      throw err;
    }
  }

  execute(request: ExecuteToolCall, options: ExecutorCallOptions = {}): Promise<ExecuteToolResponse> {
    return this.call('POST', executorPath('toolsExecute'), request, options) as Promise<ExecuteToolResponse>;
  }

  /** Starts (or reuses) one MCP server of a conversation inside the sandbox and lists its tools; its failure is MCP_SERVER_FAILURE_STATUS. */
  mcpListTools(request: McpListToolsRequest, options: ExecutorCallOptions = {}): Promise<McpListToolsResponse> {
    return this.call('POST', executorPath('mcpTools'), request, options) as Promise<McpListToolsResponse>;
  }

  /** Calls one tool of a conversation's MCP server inside the sandbox; its failure is MCP_SERVER_FAILURE_STATUS. */
  mcpCallTool(request: McpCallToolRequest, options: ExecutorCallOptions = {}): Promise<McpCallToolResponse> {
    return this.call('POST', executorPath('mcpCall'), request, options) as Promise<McpCallToolResponse>;
  }

  /** Makes a dormant (warm-pool) executor the executor of the sandbox in `root`, with its variables. */
  async init(root: string, env: Record<string, string>, options: ExecutorCallOptions = {}): Promise<void> {
    const body: ExecutorInitRequest = { root, env };
    await this.call('POST', executorPath('init'), body, options);
  }

  /** What goes on in the sandbox (the idle clock's question). */
  activity(options: ExecutorCallOptions = {}): Promise<SandboxActivity> {
    return this.call('GET', executorPath('activity'), undefined, options) as Promise<SandboxActivity>;
  }

  /** `mkdir -p` inside the sandbox (idempotent). */
  async createDirectory(path: string, options: ExecutorCallOptions = {}): Promise<void> {
    await this.call('POST', executorPath('fileCreateDirectory', {}, { path }), undefined, options);
  }

  /** A small JSON file of the sandbox, parsed (undefined when it is not JSON): 404 when absent, 413 past `maxBytes`. */
  readJsonFile(path: string, maxBytes: number, options: ExecutorCallOptions = {}): Promise<unknown> {
    return this.call('GET', executorPath('fileDownload', {}, { path }), undefined, { ...options, maxResponseBytes: maxBytes });
  }

  /** The files the conversation's project skills come from (AGENTS.md, .openhands/skills/…), read in the sandbox. */
  projectSkillFiles(workingDir: string, options: ExecutorCallOptions = {}): Promise<ProjectSkillFiles> {
    return this.call('GET', executorPath('projectSkills', {}, { working_dir: workingDir }), undefined, options) as Promise<ProjectSkillFiles>;
  }

  /** Ends the conversation's session in the executor (its terminal and other per-conversation state). */
  async closeSession(conversationId: string, options: ExecutorCallOptions = {}): Promise<void> {
    await this.call('POST', executorPath('sessionClose', { conversation_id: conversationId }), {}, options);
  }

  private async call(method: string, path: string, body: unknown, options: ExecutorCallOptions): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const headers: Record<string, string> = { [SANDBOX_TOKEN_HEADER]: this.address.token, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await send(executorRequestOptions(this.address.url, path), method, headers, body === undefined ? undefined : JSON.stringify(body), signal, options.maxResponseBytes);
      const parsed = parseJson(res.text);
      if (res.status < 200 || res.status > 299) {
        const detail = parsed !== undefined && typeof parsed === 'object' && parsed !== null && 'detail' in parsed ? parsed.detail : parsed ?? res.text;
        throw new ExecutorError(res.status, detail);
      }
      return parsed;
    } catch (err) {
      if (err instanceof ExecutorError) throw err;
      // An interrupt is the caller's own doing: hand its reason back untouched.
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) throw new ExecutorError(null, `no answer within ${timeoutMs} ms`);
      throw new ExecutorError(null, errorText(err));
    }
  }
}

/** One request over node:http (fetch cannot reach a unix socket); the body is read whole. */
function send(
  options: RequestOptions,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
  maxBytes = Infinity,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...options, method, headers, signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          req.destroy();
          return reject(new ExecutorError(413, `the answer is larger than ${maxBytes} bytes`));
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The socket error's code (ECONNREFUSED, ENOENT, …) where there is one. */
function errorText(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  return code ?? message ?? String(err);
}
