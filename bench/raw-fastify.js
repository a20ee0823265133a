'use strict';
/**
 * Baseline for the gateway bench: a bare Fastify hello-world, same Fastify as Berth's adapter.
 *   node bench/raw-fastify.js [port] [host]     (port 0 or absent = any free port)
 * GET / → {"hello":"world"}. Prints "listening <port>" once up.
 */
const fastify = require('fastify')({ logger: false });

fastify.get('/', async () => ({ hello: 'world' }));

const port = Number(process.argv[2] || 0);
const host = process.argv[3] || '127.0.0.1';
fastify.listen({ port, host }).then(
  () => console.log(`listening ${fastify.server.address().port}`),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => fastify.close().then(() => process.exit(0)));
