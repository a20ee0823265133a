import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { ExecutorClient, ExecutorError } from './executor-client';

interface Seen {
  method?: string;
  url?: string;
  token?: string | string[];
  body: string;
}

/** A stand-in executor: records each request and answers with `respond`. */
async function stubExecutor(respond: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const entry = { method: req.method, url: req.url, token: req.headers['x-sandbox-token'], body };
      seen.push(entry);
      respond(req, res, entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

const REQUEST = { conversation_id: 'a1b2', working_dir: '/workspace/project', tool: 'terminal', action: { command: 'ls' } };

describe('ExecutorClient', () => {
  const servers: Server[] = [];
  const start = async (respond: Parameters<typeof stubExecutor>[0]) => {
    const stub = await stubExecutor(respond);
    servers.push(stub.server);
    return stub;
  };

  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('posts a tool call with the token and returns the observation', async () => {
    const stub = await start((_req, res) => json(res, 200, { observation: { kind: 'TerminalObservation', exit_code: 0 } }));
    const client = new ExecutorClient({ url: `${stub.url}/`, token: 'tok' });
    expect(await client.execute(REQUEST)).toEqual({ observation: { kind: 'TerminalObservation', exit_code: 0 } });
    expect(stub.seen).toEqual([{ method: 'POST', url: '/api/tools/execute', token: 'tok', body: JSON.stringify(REQUEST) }]);
  });

  it('closes a session at /api/sessions/{id}/close', async () => {
    const stub = await start((_req, res) => json(res, 200, { success: true }));
    await new ExecutorClient({ url: stub.url, token: 'tok' }).closeSession('a/b');
    expect(stub.seen[0]).toMatchObject({ method: 'POST', url: '/api/sessions/a%2Fb/close', token: 'tok' });
  });

  it('turns an error answer into an ExecutorError with its status and detail', async () => {
    const stub = await start((req, res) => (req.url === '/api/tools/execute' ? json(res, 404, { detail: 'Not Found' }) : res.writeHead(500).end('boom')));
    const client = new ExecutorClient({ url: stub.url, token: 'tok' });
    await expect(client.execute(REQUEST)).rejects.toMatchObject({ name: 'ExecutorError', status: 404, detail: 'Not Found' });
    const failed = await client.closeSession('c').catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(ExecutorError);
    expect(failed).toMatchObject({ status: 500, detail: 'boom' });
  });

  it('gives up after its timeout with a status-less ExecutorError', async () => {
    const stub = await start(() => undefined);
    const client = new ExecutorClient({ url: stub.url, token: 'tok' }, { timeoutMs: 200 });
    await expect(client.execute(REQUEST)).rejects.toMatchObject({ name: 'ExecutorError', status: null });
  });

  it("hands an interrupt back as the signal's reason", async () => {
    const stub = await start(() => undefined);
    const client = new ExecutorClient({ url: stub.url, token: 'tok' });
    const interrupt = new AbortController();
    const call = client.execute(REQUEST, { signal: interrupt.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    interrupt.abort(new Error('interrupted by the user'));
    await expect(call).rejects.toThrow('interrupted by the user');
  });

  it('reports an unreachable executor as a status-less ExecutorError', async () => {
    const stub = await start(() => undefined);
    const { url } = stub;
    stub.server.close();
    await expect(new ExecutorClient({ url, token: 'tok' }).health()).rejects.toMatchObject({ name: 'ExecutorError', status: null, detail: 'ECONNREFUSED' });
  });
});
