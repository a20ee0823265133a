import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '@berth/config';
import { deploymentSummary } from '@berth/logging';
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
  const url = (await app.getUrl()).replace('[::1]', 'localhost');
  logger.log({ msg: `listening on ${url} (role ${config.role}); API docs at ${url}/docs`, url, role: config.role, docs: `${url}/docs` });
  for (const line of deploymentSummary(config)) logger.log(line);
}

void main().catch((err: Error) => {
  console.error(`berth: failed to start: ${err.stack ?? err.message}`);
  process.exit(1);
});
