import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '@berth/config';
import { createGatewayApp } from './app.factory';

/** `npm start [-- --host H --port P]`: the whole of Berth in one process on the embedded default. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('berth');
  if (config.role === 'worker') {
    console.error('berth: the worker role has its own entry point: node dist/apps/worker/src/main.js');
    process.exit(2);
  }
  const app = await createGatewayApp(config);
  await app.listen(config.port, config.host);
  const logger = new Logger('Berth');
  const storage = config.databaseUrl ? 'PostgreSQL' : `embedded PostgreSQL in ${config.dataDir}/db`;
  const bus = config.redisUrl ? 'Redis' : 'in-process';
  logger.log(`listening on ${await app.getUrl()} (storage: ${storage}; queue and events: ${bus}); docs at /docs`);
}

void main().catch((err: Error) => {
  console.error(`berth: failed to start: ${err.stack ?? err.message}`);
  process.exit(1);
});
