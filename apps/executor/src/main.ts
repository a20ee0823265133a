import { constantTimeEqual } from '@berth/crypto';
import { createServer } from 'node:http';

/**
 * The sandbox executor: runs inside a conversation's sandbox and executes its tools. It holds no LLM
 * key and no database or Redis credentials — only the per-sandbox token it is started with. This
 * first version answers its health probe and refuses everything without the token; the tools arrive
 * with agent runs.
 */
function main(): void {
  const token = process.env.BERTH_SANDBOX_TOKEN ?? '';
  const port = Number(process.env.BERTH_EXECUTOR_PORT ?? 0);
  if (!token) {
    console.error('berth executor: BERTH_SANDBOX_TOKEN is required');
    process.exit(2);
  }
  const server = createServer((req, res) => {
    const reply = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/health') return reply(200, { status: 'ok' });
    const offered = req.headers['x-sandbox-token'];
    if (typeof offered !== 'string' || !constantTimeEqual(offered, token)) return reply(401, { detail: 'Unauthorized' });
    return reply(404, { detail: 'Not Found' });
  });
  server.listen(port, '127.0.0.1', () => {
    const address = server.address() as { port: number };
    // The driver reads the port from this first line.
    process.stdout.write(`${JSON.stringify({ executor: 'ready', port: address.port })}\n`);
  });
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
