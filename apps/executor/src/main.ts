import { ExecuteBashRequestSchema, ExecutorInitRequestSchema } from '@berth/contracts/executor';
import { mkdir, rm } from 'node:fs/promises';
import { Activity } from './activity';
import { BashEventStore } from './bash/bash-event-store';
import { BashService } from './bash/bash-service';
import { ConfigError, ExecutorConfig, loadConfig } from './config';
import { HttpError } from './errors';
import { Executor } from './executor';
import { createDormantExecutorServer, createExecutorServer, executorHandlers } from './server';
import { logLine } from './log';

/**
 * The sandbox executor: runs inside a conversation's sandbox (a child process, later a pod) and
 * executes the agent's tools — terminal, file_editor, task_tracker — for the worker. It holds no LLM
 * key and no database or Redis credentials: only the per-sandbox token it is started with.
 *
 * Environment: BERTH_SANDBOX_TOKEN (required), BERTH_SANDBOX_ROOT (required; every path a tool
 * touches stays under it), BERTH_SANDBOX_ENV_NAMES (the variables its shells see),
 * BERTH_EXECUTOR_LISTEN_FD (an inherited listening socket to serve on: the local driver's unix
 * socket, made by the driver where the sandbox cannot reach it) or else BERTH_EXECUTOR_PORT (0 = any
 * free port) on BERTH_EXECUTOR_HOST (default 127.0.0.1; a pod's executor binds its pod IP), BERTH_TERMINAL_NO_OUTPUT_TIMEOUT_MS
 * (30000), BERTH_TERMINAL_MAX_WAIT_MS (300000), BERTH_MAX_BODY_BYTES (10 MiB). With
 * BERTH_EXECUTOR_DORMANT=1 it starts without a root, as a member of the warm pool, and takes one
 * (and the sandbox's variables) from `POST /api/init`; with BERTH_EXECUTOR_DORMANT=pod likewise, but it
 * waits for its claim however long it takes (a warm pod: the cluster, not a parent, ends it), or serves
 * at once the sandbox that BERTH_SANDBOX_INIT (an `/api/init` body, from its Secret) names. Once listening it prints one line,
 * `{"executor":"ready","port":N}` (no port on an inherited socket), which the sandbox driver reads. SIGTERM kills every shell's
 * process group and exits 0.
 */
function main(): void {
  let executor: Executor | undefined;
  const dormancy = process.env.BERTH_EXECUTOR_DORMANT;
  const dormant = dormancy === '1' || dormancy === 'pod';
  let server;
  // A claimed pod's container restarted by its kubelet: the Secret gives it the sandbox it serves (`/api/init`'s body).
  const claimed = dormancy === 'pod' && process.env.BERTH_SANDBOX_INIT ? process.env.BERTH_SANDBOX_INIT : null;
  try {
    if (dormant && !claimed) {
      const token = process.env.BERTH_SANDBOX_TOKEN ?? '';
      if (!token) throw new ConfigError('BERTH_SANDBOX_TOKEN is required');
      // Until it is given a sandbox it ends with the driver that started it (which holds the other
      // end of its stdin): no later process would ever claim it.
      if (dormancy === '1') process.stdin.on('error', () => undefined).once('close', () => executor === undefined && process.exit(0)).resume();
      // Started in its future sandbox's folder, which it makes now what a first command would (a git repository).
      const staging = loadConfig({ BERTH_SANDBOX_ROOT: process.cwd(), ...process.env });
      prepareWhileDormant(new Executor(staging), staging.root);
      server = createDormantExecutorServer(token, async (body) => {
        let config;
        try {
          config = loadConfig({ ...process.env, ...initEnv(body) });
        } catch (err) {
          throw err instanceof ConfigError ? new HttpError(422, err.message) : err;
        }
        executor = new Executor(config);
        process.chdir(config.root);
        return executorHandlers(config, executor);
      });
      listen(server, staging.listen);
    } else {
      const config = loadConfig(claimed ? { ...process.env, ...initEnv(parseInit(claimed)) } : process.env);
      executor = new Executor(config);
      server = createExecutorServer(config, executor);
      listen(server, config.listen);
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logLine('fatal', err.message);
    process.exit(2);
  }

  // However the process ends, no shell outlives it.
  process.on('exit', () => executor?.killAll());

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    executor?.closeAll();
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * What the claim and the sandbox's first command would otherwise do for the first time in this
 * process, done while it waits: the folder's git repository and bash event log made, the schemas
 * of both requests used once (zod compiles a schema's parser at its first use: ~10 ms), and one
 * command run by a bash service of its own, whose events go to a folder removed after (a process's
 * first command costs ~6 ms more than later ones).
 */
function prepareWhileDormant(staging: Executor, root: string): void {
  void staging.git.ensureRepo(root);
  void mkdir(staging.bashEvents.dir, { recursive: true }).catch(() => undefined);
  ExecutorInitRequestSchema.safeParse({ root, env: {} });
  const rehearsalEvents = staging.bashEvents.dir + '.rehearsal';
  const rehearsal = new BashService({ paths: staging.paths, store: new BashEventStore(rehearsalEvents), env: {}, activity: new Activity(), prepareDir: async () => undefined });
  void mkdir(rehearsalEvents, { recursive: true })
    .then(() => rehearsal.start(ExecuteBashRequestSchema.parse({ command: ':' })))
    .then(({ done }) => done)
    .catch(() => undefined)
    .finally(() => rm(rehearsalEvents, { recursive: true, force: true }));
}

/** `POST /api/init` {root, env}: the sandbox's folder and variables, as the environment would give them. */
function initEnv(body: unknown): Record<string, string> {
  const parsed = ExecutorInitRequestSchema.safeParse(body ?? {});
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; '));
  const { root, env } = parsed.data;
  const variables = Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('BERTH_')));
  return { ...variables, BERTH_SANDBOX_ROOT: root, BERTH_SANDBOX_ENV_NAMES: Object.keys(variables).join(',') };
}

function parseInit(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    throw new ConfigError('BERTH_SANDBOX_INIT must be the JSON of a POST /api/init body');
  }
}

function listen(server: ReturnType<typeof createExecutorServer>, on: ExecutorConfig['listen']): void {
  server.on('error', (err) => {
    logLine('fatal', 'cannot listen', err);
    process.exit(1);
  });
  const ready = () => {
    const address = server.address();
    // The driver reads this first line (and the port, when it gave none).
    const port = typeof address === 'object' && address !== null ? address.port : undefined;
    process.stdout.write(`${JSON.stringify({ executor: 'ready', port })}\n`);
  };
  if ('fd' in on) server.listen({ fd: on.fd }, ready);
  else server.listen(on.port, on.host, ready);
}

main();
