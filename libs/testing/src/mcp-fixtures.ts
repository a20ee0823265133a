import { closeServer, listenLocally, readBody } from './local-http';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';

/** The stdio MCP server fixture's file (libs/testing/fixtures), found from the sources or the build. */
export function mcpStdioFixturePath(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'libs/testing/fixtures/mcp-stdio-server.js');
    if (existsSync(candidate)) return candidate;
    const beside = join(dir, 'fixtures/mcp-stdio-server.js');
    if (existsSync(beside)) return beside;
  }
  throw new Error('libs/testing/fixtures/mcp-stdio-server.js not found');
}

/**
 * An mcp_config server entry running the stdio fixture: node with the script's text as `-e`, so it
 * runs wherever node does (inside a sandbox, which sees none of the host's files; or the reference
 * server) without copying a file there first.
 */
export function mcpStdioServer(env: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return { command: process.execPath, args: ['-e', readFileSync(mcpStdioFixturePath(), 'utf8')], env, ...extra };
}

interface Rpc {
  id?: number | string;
  method: string;
  params?: any;
}

/** One request the HTTP fixture took: what was asked, with which session, and whether its credential was right. */
export interface McpHttpRequest {
  method: string;
  session: string | null;
  authorized: boolean;
}

/**
 * A remote MCP server for tests (127.0.0.1, random port). `http` (streamable HTTP, at `/mcp`):
 * `initialize` hands out a session id that every later request must carry; `tools/list` answers
 * JSON, `tools/call` an event stream (both forms of the transport). `sse` (the older transport, at
 * `/sse`): a GET opens the event stream, whose `endpoint` event names where to POST; answers come on
 * the stream. With `token`, a request without `Authorization: Bearer <token>` is a 401. Tools: `add`
 * (a + b) and `slow` (answers after `ms`).
 */
export class McpHttpFixture {
  readonly requests: McpHttpRequest[] = [];
  private server?: Server;
  private readonly sessions = new Set<string>();
  private readonly streams = new Map<string, ServerResponse>();
  url = '';

  constructor(
    private readonly token: string | null = null,
    private readonly transport: 'http' | 'sse' = 'http',
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.url = `http://127.0.0.1:${await listenLocally(this.server)}/${this.transport === 'http' ? 'mcp' : 'sse'}`;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req);
    const authorized = this.token === null || req.headers.authorization === `Bearer ${this.token}`;
    const url = new URL(req.url ?? '/', 'http://fixture');
    if (this.transport === 'sse' && req.method === 'GET' && url.pathname === '/sse') {
      this.requests.push({ method: 'GET /sse', session: null, authorized });
      if (!authorized) return void res.writeHead(401).end();
      const id = randomUUID();
      this.streams.set(id, res);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`event: endpoint\ndata: /messages?session_id=${id}\n\n`);
      return;
    }
    if (req.method === 'DELETE') {
      this.sessions.delete(String(req.headers['mcp-session-id']));
      return void res.writeHead(200).end();
    }
    if (req.method !== 'POST') return void res.writeHead(405).end();
    let rpc: Rpc;
    try {
      rpc = JSON.parse(text) as Rpc;
    } catch {
      return void res.writeHead(400).end();
    }
    if (this.transport === 'sse') {
      const session = url.searchParams.get('session_id');
      this.requests.push({ method: rpc.method, session, authorized });
      const stream = session ? this.streams.get(session) : undefined;
      if (!authorized) return void res.writeHead(401).end();
      if (!stream) return void res.writeHead(404).end();
      res.writeHead(202).end();
      const answer = await this.answer(rpc);
      if (answer) stream.write(`event: message\ndata: ${JSON.stringify(answer)}\n\n`);
      return;
    }
    const session = typeof req.headers['mcp-session-id'] === 'string' ? req.headers['mcp-session-id'] : null;
    this.requests.push({ method: rpc.method, session, authorized });
    if (!authorized) return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unauthorized' }));
    if (rpc.method === 'initialize') {
      const id = randomUUID();
      this.sessions.add(id);
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': id });
      return void res.end(JSON.stringify(await this.answer(rpc)));
    }
    if (!session || !this.sessions.has(session)) return void res.writeHead(404).end();
    if (rpc.id === undefined) return void res.writeHead(202).end();
    const answer = await this.answer(rpc);
    if (rpc.method !== 'tools/call') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify(answer));
    }
    // As an event stream, with a notification before the answer (the client must skip it).
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'working' } })}\n\n`);
    res.end(`event: message\ndata: ${JSON.stringify(answer)}\n\n`);
  }

  /** The JSON-RPC answer to a request (null for a notification). */
  private async answer(rpc: Rpc): Promise<Record<string, unknown> | null> {
    if (rpc.id === undefined) return null;
    const ok = (result: unknown) => ({ jsonrpc: '2.0', id: rpc.id, result });
    switch (rpc.method) {
      case 'initialize':
        return ok({ protocolVersion: rpc.params?.protocolVersion ?? '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'berth-http-fixture', version: '1.0.0' } });
      case 'tools/list':
        return ok({
          tools: [
            { name: 'add', description: 'Adds two numbers.', inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } },
            { name: 'slow', description: 'Answers after ms milliseconds.', inputSchema: { type: 'object', properties: { ms: { type: 'integer' } }, required: ['ms'] } },
          ],
        });
      case 'tools/call': {
        const args = rpc.params?.arguments ?? {};
        if (rpc.params?.name === 'slow') await new Promise((resolve) => setTimeout(resolve, Number(args.ms)));
        return ok({ content: [{ type: 'text', text: rpc.params?.name === 'add' ? String(Number(args.a) + Number(args.b)) : 'done' }], isError: false });
      }
      default:
        return { jsonrpc: '2.0', id: rpc.id, error: { code: -32601, message: `Method not found: ${rpc.method}` } };
    }
  }
}
