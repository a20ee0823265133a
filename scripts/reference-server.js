'use strict';
/*
 * The OpenHands reference agent server (`python -m openhands.agent_server`, from the venv that
 * scripts/reference-venv.sh makes) as a child process on a free loopback port, for the conformance
 * suite, the Python SDK tests and the side-by-side benchmark. Everything it writes lives in one
 * private folder, removed by stop(); it is offline (LiteLLM's bundled cost map, no telemetry).
 */
const { execFileSync, spawn } = require('node:child_process');
const { mkdtempSync, rmSync, openSync, closeSync, readFileSync } = require('node:fs');
const { createServer } = require('node:net');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');

const REPO_ROOT = resolve(__dirname, '..');

/** The venv's python, made on first use (about a minute, once per machine). */
function referencePython() {
  return execFileSync('bash', [join(REPO_ROOT, 'scripts', 'reference-venv.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

function freePort() {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

/** The offline, telemetry-free environment a reference process (server or SDK client) runs in. */
function referenceEnv(home, extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OH_|SESSION_API_KEY$|LMNR_|OTEL_|DEBUG$)/.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    HOME: home,
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    LITELLM_TELEMETRY: 'False',
    POSTHOG_DISABLED: '1',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}

/**
 * Starts the reference server; resolves once `/health` answers. `apiKey` null runs it without
 * authentication. `env` adds OH_* settings. stop() ends it (SIGTERM, then SIGKILL) and removes its folder.
 */
async function startReferenceServer({ apiKey = 'reference-key', env = {}, startTimeoutMs = 90_000 } = {}) {
  const python = referencePython();
  const dir = mkdtempSync(join(tmpdir(), 'berth-reference-'));
  const port = await freePort();
  const logPath = join(dir, 'server.log');
  const log = openSync(logPath, 'a');
  const child = spawn(python, ['-m', 'openhands.agent_server', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: dir,
    env: referenceEnv(dir, {
      ...(apiKey ? { OH_SESSION_API_KEYS_0: apiKey } : {}),
      OH_CONVERSATIONS_PATH: join(dir, 'conversations'),
      OH_WORKSPACE_PATH: join(dir, 'workspace'),
      OH_BASH_EVENTS_DIR: join(dir, 'bash_events'),
      OH_ENABLE_VSCODE: 'false',
      OH_PRELOAD_TOOLS: 'false',
      ...env,
    }),
    stdio: ['ignore', log, log],
    detached: true,
  });
  closeSync(log);
  let exited = null;
  child.once('exit', (code, signal) => (exited = { code, signal }));
  const url = `http://127.0.0.1:${port}`;
  const readLog = () => {
    try {
      return readFileSync(logPath, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };

  const stop = async () => {
    if (!exited) {
      const gone = new Promise((ok) => child.once('exit', ok));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {}
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }, 5000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exited) {
      const tail = readLog();
      await stop();
      throw new Error(`the reference server exited (${JSON.stringify(exited)}) before answering:\n${tail}`);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      const tail = readLog();
      await stop();
      throw new Error(`the reference server did not answer /health within ${startTimeoutMs} ms:\n${tail}`);
    }
    await new Promise((ok) => setTimeout(ok, 200));
  }
  return { url, port, apiKey, dir, pid: child.pid, python, workspacePath: join(dir, 'workspace'), log: readLog, stop };
}

module.exports = { startReferenceServer, referencePython, referenceEnv, freePort, REPO_ROOT };
