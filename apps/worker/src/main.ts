import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventBus } from '@berth/bus';
import { loadConfigOrExit } from '@berth/config';
import { BerthLogger, deploymentSummary } from '@berth/logging';
import { metricsAccessAllowed, scrapeMetrics } from '@berth/metrics';
import { Database } from '@berth/persistence';
import { RunQueue } from '@berth/queue';
import { createServer } from 'node:http';
import { WorkerModule } from './worker.module';

/** `node dist/apps/worker/src/main.js [--host H --port P]`: a worker, with /health and /ready for probes and /metrics for Prometheus. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('berth worker');
  const logger = new Logger('Worker');
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), { bufferLogs: true });
  app.useLogger(app.get(BerthLogger));
  app.enableShutdownHooks();
  const db = app.get(Database);
  const probes = createServer((req, res) => {
    const reply = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/health' || req.url === '/alive') return reply(200, { status: 'ok' });
    if (req.url === '/metrics') {
      if (!metricsAccessAllowed(config.metricsToken, req.headers.authorization)) return reply(401, { detail: 'Unauthorized' });
      return void scrapeMetrics().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: Error) => reply(500, { detail: `metrics: ${err.message}` }),
      );
    }
    if (req.url !== '/ready') return reply(404, { detail: 'Not Found' });
    if (!db.isMigrated) return reply(503, { status: 'initializing', message: 'database migrations' });
    Promise.all([db.ping(), app.get(EventBus).ping(), app.get(RunQueue).ping()]).then(
      () => reply(200, { status: 'ready' }),
      (err: Error) => reply(503, { status: 'initializing', message: `Dependency unavailable: ${err.message}` }),
    );
  });
  probes.listen(config.port, config.host);
  process.once('SIGTERM', () => probes.close());
  await db.ready;
  const probesUrl = `http://${config.host}:${config.port}`;
  logger.log({ msg: `worker ready; probes on ${probesUrl}`, probes: probesUrl });
  for (const line of deploymentSummary(config)) logger.log(line);
}

void main().catch((err: Error) => {
  console.error(`berth worker: failed to start: ${err.stack ?? err.message}`);
  process.exit(1);
});
