import { ConfigError, loadConfig } from './config';
import { Executor } from './executor';
import { createExecutorServer } from './server';

/**
 * The sandbox executor: runs inside a conversation's sandbox (a child process, later a pod) and
 * executes the agent's tools — terminal, file_editor, task_tracker — for the worker. It holds no LLM
 * key and no database or Redis credentials: only the per-sandbox token it is started with.
 *
 * Environment: BERTH_SANDBOX_TOKEN (required), BERTH_SANDBOX_ROOT (required; every path a tool
 * touches stays under it), BERTH_EXECUTOR_PORT (0 = any free port; 127.0.0.1 only),
 * BERTH_TERMINAL_NO_OUTPUT_TIMEOUT_MS (30000), BERTH_TERMINAL_MAX_WAIT_MS (300000),
 * BERTH_MAX_BODY_BYTES (10 MiB). Once listening it prints one line, `{"executor":"ready","port":N}`,
 * which the sandbox driver reads. SIGTERM kills every shell's process group and exits 0.
 */
function main(): void {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`berth executor: ${err.message}`);
    process.exit(2);
  }
  const executor = new Executor(config);
  const server = createExecutorServer(config, executor);

  // However the process ends, no shell outlives it.
  process.on('exit', () => executor.killAll());

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    executor.closeAll();
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  server.on('error', (err) => {
    console.error(`berth executor: cannot listen: ${err.message}`);
    process.exit(1);
  });
  server.listen(config.port, '127.0.0.1', () => {
    const address = server.address() as { port: number };
    // The driver reads the port from this first line.
    process.stdout.write(`${JSON.stringify({ executor: 'ready', port: address.port })}\n`);
  });
}

main();
