import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';

/** Everything the executor reads from its environment (set by the sandbox driver). */
export interface ExecutorConfig {
  /** `x-sandbox-token` every route but `/health` requires. */
  token: string;
  /** An inherited listening socket (the local driver's unix socket), or a TCP port on `host` (0 = any free one). */
  listen: { fd: number } | { port: number; host: string };
  /** Real path of the sandbox's folder: every path a tool touches must resolve inside it. */
  root: string;
  /** A terminal command without `timeout` returns (exit code -1) after this long without new output. */
  noOutputTimeoutMs: number;
  /** A terminal command without `timeout` returns after this long even while it keeps printing. */
  maxWaitMs: number;
  /** Largest request body. */
  maxBodyBytes: number;
  /** Largest file `POST /api/file/upload` takes. */
  maxUploadBytes: number;
  /** The sandbox's own variables (POST /api/sandboxes `env`), which its shells see. */
  sandboxEnv: Record<string, string>;
}

export class ConfigError extends Error {}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(`${name} must be a positive integer (got ${JSON.stringify(raw)})`);
  return value;
}

/** The variables named by BERTH_SANDBOX_ENV_NAMES (never the executor's own BERTH_* settings). */
function sandboxEnvOf(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of (env.BERTH_SANDBOX_ENV_NAMES ?? '').split(',')) {
    if (name && !name.startsWith('BERTH_') && env[name] !== undefined) out[name] = env[name] as string;
  }
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ExecutorConfig {
  const token = env.BERTH_SANDBOX_TOKEN ?? '';
  if (!token) throw new ConfigError('BERTH_SANDBOX_TOKEN is required');
  const rawPort = env.BERTH_EXECUTOR_PORT ?? '0';
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`BERTH_EXECUTOR_PORT must be a port number (got ${JSON.stringify(rawPort)})`);
  // 127.0.0.1 unless told (a pod's executor binds its pod IP: the only address its NetworkPolicy lets Berth reach).
  const host = env.BERTH_EXECUTOR_HOST?.trim() || '127.0.0.1';
  const rawFd = env.BERTH_EXECUTOR_LISTEN_FD;
  const fd = rawFd === undefined || rawFd === '' ? null : Number(rawFd);
  if (fd !== null && !(Number.isInteger(fd) && fd >= 3)) throw new ConfigError(`BERTH_EXECUTOR_LISTEN_FD must be an inherited descriptor, 3 or more (got ${JSON.stringify(rawFd)})`);
  const rootDir = env.BERTH_SANDBOX_ROOT ?? '';
  if (!rootDir) throw new ConfigError('BERTH_SANDBOX_ROOT is required (the sandbox folder, an absolute path)');
  if (!isAbsolute(rootDir)) throw new ConfigError(`BERTH_SANDBOX_ROOT must be an absolute path (got ${JSON.stringify(rootDir)})`);
  let root: string;
  try {
    mkdirSync(rootDir, { recursive: true });
    root = realpathSync(rootDir);
    if (!statSync(root).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new ConfigError(`BERTH_SANDBOX_ROOT ${rootDir} is not a usable folder: ${(err as Error).message}`);
  }
  return {
    token,
    listen: fd === null ? { port, host } : { fd },
    root,
    noOutputTimeoutMs: positiveInt(env, 'BERTH_TERMINAL_NO_OUTPUT_TIMEOUT_MS', 30_000),
    maxWaitMs: positiveInt(env, 'BERTH_TERMINAL_MAX_WAIT_MS', 300_000),
    maxBodyBytes: positiveInt(env, 'BERTH_MAX_BODY_BYTES', 10 * 1024 * 1024),
    maxUploadBytes: positiveInt(env, 'BERTH_MAX_UPLOAD_BYTES', 1024 * 1024 * 1024),
    sandboxEnv: sandboxEnvOf(env),
  };
}
