import { ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** An MCP server failed: could not start, died, answered with an error, or not in time. The message is the user's to read. */
export class McpServerError extends Error {
  constructor(
    message: string,
    /** the request ran out of its time */
    readonly timedOut = false,
  ) {
    super(message);
    this.name = 'McpServerError';
  }
}

/** JSON-RPC to one MCP server: requests with an answer, notifications without. */
export interface McpConnection {
  request(method: string, params: unknown, signal: AbortSignal): Promise<unknown>;
  notify(method: string, params?: unknown): Promise<void>;
  /** false once the server is gone (its process exited); a new connection is needed then */
  readonly alive: boolean;
  close(): void;
}

interface JsonRpcMessage {
  id?: number | string | null;
  method?: string;
  result?: unknown;
  error?: { code?: number; message?: string; data?: unknown };
}

function rpcResult(message: JsonRpcMessage): unknown {
  if (message.error) throw new McpServerError(`MCP error ${message.error.code ?? ''}: ${message.error.message ?? 'unknown error'}`.replace(' :', ':'));
  return message.result;
}

/** Rejects when `signal` aborts, with its reason as an McpServerError. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    return Promise.reject(new McpServerError(String((signal.reason as Error)?.message ?? signal.reason)));
  }
  return new Promise<T>((resolve, reject) => {
    const aborted = () => {
      onAbort();
      reject(new McpServerError(String((signal.reason as Error)?.message ?? signal.reason)));
    };
    signal.addEventListener('abort', aborted, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', aborted);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', aborted);
        reject(err);
      },
    );
  });
}

function jsonRpc(text: string): JsonRpcMessage | null {
  try {
    const message = JSON.parse(text) as unknown;
    return message && typeof message === 'object' ? (message as JsonRpcMessage) : null;
  } catch {
    return null;
  }
}

/** The events of a server-sent-event stream (`event:` name, `data:` lines joined), until it ends or `signal` aborts. */
async function* serverSentEvents(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await abortable(reader.read(), signal, () => void reader.cancel().catch(() => undefined));
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const lines = buffer.slice(0, end).split('\n');
        buffer = buffer.slice(end + 2);
        const field = (name: string) => lines.filter((line) => line.startsWith(`${name}:`)).map((line) => line.slice(name.length + 1).replace(/^ /, ''));
        const data = field('data').join('\n');
        if (data) yield { event: field('event')[0] ?? 'message', data };
      }
    }
  } finally {
    void reader.cancel().catch(() => undefined);
  }
}

/** What a stdio server printed on stderr last: said when it dies, to tell why. */
const STDERR_TAIL_BYTES = 2000;

/**
 * A stdio MCP server: a child process (its own process group, killed whole on close) speaking
 * newline-delimited JSON-RPC on stdin/stdout, as the MCP stdio transport does.
 */
export class StdioMcpConnection implements McpConnection {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (m: JsonRpcMessage) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stderrTail = '';
  private exited: string | null = null;

  constructor(command: string, args: string[], options: { cwd: string; env: Record<string, string> }) {
    this.child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.stdin!.on('error', () => undefined);
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.receive(line));
    this.child.on('error', (err: NodeJS.ErrnoException) => {
      this.gone(err.code === 'ENOENT' ? `command not found: ${command}` : `could not start ${command}: ${err.message}`);
    });
    this.child.on('exit', (code, signal) => {
      const tail = this.stderrTail.trim();
      this.gone(`the MCP server exited (${signal ?? `code ${code}`})${tail ? `; it printed: ${tail}` : ''}`);
    });
  }

  get alive(): boolean {
    return this.exited === null;
  }

  private gone(reason: string): void {
    this.exited ??= reason;
    for (const { reject } of this.pending.values()) reject(new McpServerError(this.exited));
    this.pending.clear();
  }

  private receive(line: string): void {
    if (!line.trim()) return;
    let message: JsonRpcMessage;
    try {
      message = JSON.parse(line) as JsonRpcMessage;
    } catch {
      return; // not JSON-RPC (a server logging on stdout): ignored, as the SDK's client does
    }
    if (typeof message.id !== 'number') return; // a notification or a request of the server's: Berth offers it nothing
    const waiter = this.pending.get(message.id);
    this.pending.delete(message.id);
    waiter?.resolve(message);
  }

  private write(message: unknown): void {
    if (this.exited) throw new McpServerError(this.exited);
    this.child.stdin!.write(JSON.stringify({ jsonrpc: '2.0', ...(message as object) }) + '\n');
  }

  async request(method: string, params: unknown, signal: AbortSignal): Promise<unknown> {
    const id = this.nextId++;
    const answer = new Promise<JsonRpcMessage>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.write({ id, method, params });
    return rpcResult(await abortable(answer, signal, () => this.pending.delete(id)));
  }

  async notify(method: string, params?: unknown): Promise<void> {
    this.write({ method, ...(params === undefined ? {} : { params }) });
  }

  close(): void {
    this.gone('the MCP server was stopped');
    if (this.child.pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
  }
}

/**
 * A remote MCP server over streamable HTTP: each message is a POST; the answer is JSON or an event
 * stream carrying it. The session id the server hands out at `initialize` goes with every later request.
 */
export class HttpMcpConnection implements McpConnection {
  private sessionId: string | null = null;
  private protocolVersion: string | null = null;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly headers: Record<string, string>,
  ) {}

  get alive(): boolean {
    return !this.closed;
  }

  /** Set once `initialize` answered: later requests carry it (MCP-Protocol-Version). */
  useProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  private async post(body: unknown, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (this.sessionId) headers['mcp-session-id'] = this.sessionId;
    if (this.protocolVersion) headers['mcp-protocol-version'] = this.protocolVersion;
    let res: Response;
    try {
      res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify(body), signal, redirect: 'error' });
    } catch (err) {
      if (signal.aborted) throw new McpServerError(String((signal.reason as Error)?.message ?? signal.reason));
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new McpServerError(`cannot reach the MCP server at ${new URL(this.url).origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const session = res.headers.get('mcp-session-id');
    if (session) this.sessionId = session;
    if (!res.ok && res.status !== 202) {
      const text = (await res.text().catch(() => '')).slice(0, 500);
      throw new McpServerError(`the MCP server answered HTTP ${res.status}${text ? `: ${text}` : ''}`);
    }
    return res;
  }

  async request(method: string, params: unknown, signal: AbortSignal): Promise<unknown> {
    const id = this.nextId++;
    const res = await this.post({ jsonrpc: '2.0', id, method, params }, signal);
    const type = res.headers.get('content-type') ?? '';
    if (type.includes('text/event-stream')) return rpcResult(await this.fromEventStream(res, id, signal));
    let message: JsonRpcMessage;
    try {
      message = (await res.json()) as JsonRpcMessage;
    } catch {
      throw new McpServerError(`the MCP server's answer to ${method} is not JSON-RPC`);
    }
    return rpcResult(message);
  }

  /** Reads server-sent events until the one answering request `id`. */
  private async fromEventStream(res: Response, id: number, signal: AbortSignal): Promise<JsonRpcMessage> {
    for await (const { data } of serverSentEvents(res.body!, signal)) {
      const message = jsonRpc(data);
      if (message?.id === id) return message;
    }
    throw new McpServerError('the MCP server closed its event stream without answering');
  }

  async notify(method: string, params?: unknown): Promise<void> {
    const res = await this.post({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) }, AbortSignal.timeout(30_000));
    await res.body?.cancel().catch(() => undefined);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Ends the server's session (streamable HTTP: DELETE with the session id); a server may not support it.
    if (this.sessionId) {
      void fetch(this.url, { method: 'DELETE', headers: { ...this.headers, 'mcp-session-id': this.sessionId }, signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
    }
  }
}

/**
 * A remote MCP server over the older SSE transport: a GET opens the server's event stream, whose
 * `endpoint` event names where to POST messages (on the same origin: the headers go nowhere else);
 * answers come back as `message` events on the stream.
 */
export class SseMcpConnection implements McpConnection {
  private readonly stream = new AbortController();
  private readonly pending = new Map<number, { resolve: (m: JsonRpcMessage) => void; reject: (e: Error) => void }>();
  private readonly endpoint: Promise<string>;
  private nextId = 1;
  private ended: string | null = null;

  constructor(
    private readonly url: string,
    private readonly headers: Record<string, string>,
  ) {
    this.endpoint = this.open();
    this.endpoint.catch(() => undefined);
  }

  get alive(): boolean {
    return this.ended === null;
  }

  private async open(): Promise<string> {
    let res: Response;
    try {
      res = await fetch(this.url, { headers: { ...this.headers, accept: 'text/event-stream' }, signal: this.stream.signal, redirect: 'error' });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw this.gone(`cannot reach the MCP server at ${new URL(this.url).origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    if (!res.ok || !res.body) throw this.gone(`the MCP server answered HTTP ${res.status} to its event stream`);
    return new Promise<string>((resolve, reject) => {
      void (async () => {
        try {
          for await (const { event, data } of serverSentEvents(res.body!, this.stream.signal)) {
            if (event === 'endpoint') {
              const endpoint = new URL(data, this.url);
              if (endpoint.origin !== new URL(this.url).origin) return reject(this.gone('the MCP server named a message endpoint on another origin'));
              resolve(endpoint.href);
              continue;
            }
            const message = jsonRpc(data);
            if (typeof message?.id !== 'number') continue;
            const waiter = this.pending.get(message.id);
            this.pending.delete(message.id);
            waiter?.resolve(message);
          }
          reject(this.gone('the MCP server closed its event stream'));
        } catch (err) {
          reject(this.gone(`the MCP server's event stream failed: ${(err as Error).message}`));
        }
      })();
    });
  }

  private gone(reason: string): McpServerError {
    this.ended ??= reason;
    for (const { reject } of this.pending.values()) reject(new McpServerError(this.ended));
    this.pending.clear();
    return new McpServerError(this.ended);
  }

  private async post(message: unknown, signal: AbortSignal): Promise<void> {
    const endpoint = await abortable(this.endpoint, signal, () => undefined);
    const res = await fetch(endpoint, { method: 'POST', headers: { ...this.headers, 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', ...(message as object) }), signal, redirect: 'error' }).catch((err: Error) => {
      throw new McpServerError(`cannot reach the MCP server's message endpoint: ${err.message}`);
    });
    await res.body?.cancel().catch(() => undefined);
    if (!res.ok) throw new McpServerError(`the MCP server answered HTTP ${res.status}`);
  }

  async request(method: string, params: unknown, signal: AbortSignal): Promise<unknown> {
    if (this.ended) throw new McpServerError(this.ended);
    const id = this.nextId++;
    const answer = new Promise<JsonRpcMessage>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    answer.catch(() => undefined);
    await this.post({ id, method, params }, signal);
    return rpcResult(await abortable(answer, signal, () => this.pending.delete(id)));
  }

  async notify(method: string, params?: unknown): Promise<void> {
    await this.post({ method, ...(params === undefined ? {} : { params }) }, AbortSignal.timeout(30_000));
  }

  close(): void {
    this.gone('the MCP server was stopped');
    this.stream.abort();
  }
}
