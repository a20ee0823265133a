'use strict';
/**
 * The agent loop's own cost per step (run by bench/run.js; alone: `node bench/run.js agent-loop`).
 * One conversation of BENCH_LOOP_STEPS steps, each a `think` call (answered by the worker, no
 * sandbox), then `finish`; the scripted LLM (LlmStub, in this process) answers at once. The time
 * between two of the run's LLM requests is one step of the loop less the LLM and the tool: reading
 * the history, recording the action, its observation and the stats, publishing them. Printed: the
 * median gap over the 10 steps up to step 10, 100 and 1,000 (of the steps there are), for the
 * reference agent server (openhands-sdk 1.58.2, scripts/reference-server.js) and for Berth (as
 * `npm start` runs it: embedded PGlite; and with PostgreSQL + Redis when they answer), side by side.
 * A step cost that grows with the conversation shows as a larger figure at 1,000 than at 10.
 *
 * Environment (besides bench/run.js's BENCH_STORAGE, BENCH_PG_URL, BENCH_REDIS_URL):
 *   BENCH_LOOP_STEPS      steps of the conversation (default 1000)
 *   BENCH_LOOP_CONDENSER  0 = no condenser (the default gives the agent an LLMSummarizingCondenser,
 *                         max_size 80, keep_first 4, so that what is sent to the LLM stays bounded
 *                         and a growing figure is the loop's own; its summary steps are part of it)
 */
const { createHash } = require('node:crypto');
const path = require('node:path');
const { request, keepAliveAgent } = require('./lib/load');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { killTree } = require('./lib/proctree');
const { table } = require('./lib/stats');
const { berthEnv, berthStart, prepareStorage } = require('./lib/berth');

const BENCH = 'agent-loop';

/**
 * The reference derives its secrets cipher from its first session key (sha256, standard base64),
 * which the venv's cryptography 51 refuses when the digest's base64 holds `+` or `/`: the key is
 * picked so that it holds neither.
 */
function referenceSafeKey(base) {
  for (let i = 0; ; i++) {
    const key = `${base}-${i}`;
    if (!/[+/]/.test(createHash('sha256').update(key).digest('base64'))) return key;
  }
}
const API_KEY = referenceSafeKey('bench-key');
const AUTH = { 'X-Session-API-Key': API_KEY };
const HOST = '127.0.0.1';
const CHECKPOINTS = [10, 100, 1000];
const WINDOW = 10;

function stepsEnv() {
  const raw = process.env.BENCH_LOOP_STEPS;
  const v = raw ? Number(raw) : 1000;
  if (!Number.isInteger(v) || v < 20) throw new Error(`BENCH_LOOP_STEPS must be an integer ≥ 20, got "${raw}"`);
  return v;
}

async function startReference(ctx) {
  const { startReferenceServer } = require(path.join(ctx.root, 'scripts/reference-server.js'));
  const ref = await startReferenceServer({ apiKey: API_KEY });
  ctx.defer('stop the reference server', () => ref.stop());
  return { name: 'reference', target: { host: HOST, port: ref.port }, workingDir: ref.workspacePath, stop: () => ref.stop() };
}

async function startBerth(ctx, mode) {
  const prepared = await prepareStorage(ctx, mode, `berth_bench_loop_${process.pid}`);
  if (!prepared) return null;
  const dataDir = ctx.tmpdir('berth-bench-loop-');
  const port = await freePort();
  const start = berthStart(ctx.root);
  const env = berthEnv({ OH_SESSION_API_KEYS_0: API_KEY, LOG_LEVEL: 'warn', BERTH_DATA_DIR: dataDir, ...prepared.env, ...start.env });
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  const handle = spawnNode(`berth[${mode}]`, main, { args: ['--host', HOST, '--port', String(port)], nodeArgs: start.nodeArgs, env, cwd: ctx.root });
  const stop = () => killTree(handle, { dir: dataDir, force: true });
  ctx.defer(`stop berth[${mode}]`, stop);
  await waitForHttp(handle, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  return { name: `Berth (${mode})`, target: { host: HOST, port }, workingDir: '/workspace/project', stop };
}

/** One conversation of `steps` think steps on `server`; the gaps between its LLM requests, in ms. */
async function runSteps(server, llm, steps, condenser) {
  const text = `think ${steps} times on ${server.name}`;
  llm.script(text, (_request, turn) =>
    turn < steps ? { toolCalls: [{ name: 'think', arguments: { thought: `step ${turn}` } }] } : { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
  );
  const llmConfig = (usageId) => ({ model: 'openai/bench-model', api_key: 'sk-bench', base_url: llm.url, num_retries: 0, usage_id: usageId });
  const body = {
    agent: {
      kind: 'Agent',
      llm: llmConfig('agent'),
      tools: [],
      ...(condenser ? { condenser: { kind: 'LLMSummarizingCondenser', llm: llmConfig('condenser'), max_size: 80, keep_first: 4 } } : {}),
    },
    workspace: { kind: 'LocalWorkspace', working_dir: server.workingDir },
    max_iterations: steps * 2 + 10,
    initial_message: { role: 'user', content: [{ type: 'text', text }], run: true },
  };
  const agent = keepAliveAgent(2);
  const res = await request(agent, server.target, { method: 'POST', path: '/api/conversations', headers: AUTH, body, readBody: true });
  if (res.status !== 200 && res.status !== 201) throw new Error(`${server.name}: POST /api/conversations → ${res.status}: ${String(res.body).slice(0, 300)}`);
  const id = JSON.parse(res.body).id;
  const deadline = Date.now() + 60_000 + steps * 500;
  let status = '';
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const info = await request(agent, server.target, { path: `/api/conversations/${id}`, headers: AUTH, readBody: true });
    status = JSON.parse(info.body).execution_status;
    if (!['running', 'idle'].includes(status) || Date.now() > deadline) break;
  }
  let why = '';
  if (status !== 'finished') {
    const last = await request(agent, server.target, { path: `/api/conversations/${id}/events/search?sort_order=TIMESTAMP_DESC&limit=10`, headers: AUTH, readBody: true });
    const error = JSON.parse(last.body).items?.find((e) => /Error/.test(e.kind));
    if (error) why = `${error.kind}: ${error.code ?? ''} ${String(error.detail ?? error.error ?? '').slice(0, 300)}`;
  }
  agent.destroy();
  const times = llm.requestsFor(text).map((r) => r.receivedAt);
  return { status, why, requests: times.length, gaps: times.slice(1).map((t, i) => t - times[i]) };
}

/** The median gap over the WINDOW steps up to step k (gap i: from request i-1 to request i). */
function perStepAt(gaps, k) {
  if (gaps.length < k) return NaN;
  const window = gaps.slice(Math.max(0, k - WINDOW), k).sort((a, b) => a - b);
  return window[Math.floor(window.length / 2)];
}

async function run(ctx) {
  const { log } = ctx;
  const steps = stepsEnv();
  const condenser = !['0', 'false', 'no'].includes((process.env.BENCH_LOOP_CONDENSER || '').toLowerCase());
  const checkpoints = CHECKPOINTS.filter((k) => k <= steps);
  log(`  one conversation of ${steps} think steps per server${condenser ? ', LLMSummarizingCondenser(max_size 80, keep_first 4)' : ''}; per-step time = median gap between LLM requests`);
  const { LlmStub } = require(path.join(ctx.root, 'dist/libs/testing/src/index.js'));
  const llm = new LlmStub();
  llm.summaryScript(() => ({ text: 'USER_CONTEXT: think many times' }));
  await llm.start();
  ctx.defer('stop the LLM stub', () => llm.stop());

  const rows = [];
  const starters = [() => startReference(ctx), ...ctx.options.storage.map((mode) => () => startBerth(ctx, mode))];
  for (const startServer of starters) {
    const server = await startServer();
    if (!server) continue;
    log(`  ${server.name}: ${steps} steps…`);
    const started = performance.now();
    const result = await runSteps(server, llm, steps, condenser);
    const wallS = (performance.now() - started) / 1000;
    await server.stop();
    if (result.status !== 'finished') log(`    ! ${server.name}: ended ${result.status} after ${result.requests} LLM requests${result.why ? ` (${result.why})` : ''}`);
    const figures = checkpoints.map((k) => perStepAt(result.gaps, k));
    figures.forEach((f, i) => ctx.report({ bench: BENCH, storage: server.name, target: `ms per step at step ${checkpoints[i]}`, measured: Number.isFinite(f) ? `${f.toFixed(1)} ms` : '-', ok: null }));
    rows.push([server.name, ...figures.map((f) => (Number.isFinite(f) ? `${f.toFixed(1)} ms` : '-')), `${wallS.toFixed(1)} s`, result.status]);
  }
  log('');
  log(table(['server', ...checkpoints.map((k) => `step ${k}`), 'whole run', 'ended'], rows));
}

module.exports = { run };
