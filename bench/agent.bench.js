'use strict';
/**
 * Agent-run benchmark (run by bench/run.js) — issue "Agent runs": figures are printed, never asserted.
 *
 * 0. Cold executor start: LocalSandboxDriver.provision (dist/libs/sandbox) timed 20 times one after
 *    another in this process, then 20 at once; RSS/PSS of an idle executor and the time of its first
 *    terminal command (which starts the sandbox's bash).
 * For each storage mode (PostgreSQL + Redis in a throw-away database and key prefix, and the embedded
 * default), Berth as a child process (dist/apps/gateway/src/main.js, --role all: gateway and worker in
 * one process; sandboxes are executor child processes of it) against the scripted LLM stub of
 * libs/testing, which runs in this process (turn 0: terminal `echo hi`; turn 1: finish):
 * 1. create → first ActionEvent: sequentially, after 5 warm-up runs, N conversations (each one waits
 *    for the previous to finish): from just before `POST /api/conversations` (with initial_message) to
 *    the first `ActionEvent` frame on `/sockets/events/{id}?resend_mode=all` (opened as soon as the
 *    POST answers; the replay delivers an action recorded before the socket connected). The event
 *    timestamps and the time the LLM stub received the first request split the time up.
 * 2. Concurrent runs: for each size in BENCH_AGENT_SIZES, a fresh Berth (fresh data directory and
 *    database), N conversations created at once (16 POSTs in flight), each watched on its own socket
 *    until a terminal `execution_status` (finished / error / stuck); "lost" = none within the timeout.
 *    Wall time, completions per terminal status, peak RSS of Berth and of all its descendants
 *    (executors — nothing stops them after a run yet — and their shells), sampled from /proc every
 *    second, and PSS at the end (RSS double-counts the pages node processes share). The largest size
 *    runs at the default OH_MAX_CONCURRENT_RUNS (10) and again at BENCH_AGENT_HIGH_CONCURRENCY when
 *    the first run's peak leaves room under the memory limit — for the first storage mode only
 *    (postgres by default; this keeps `npm run bench` near 6 minutes: every 500-run scenario takes a
 *    minute of two busy cores, mostly starting executors). A scenario is aborted (the whole tree
 *    killed) and reported as such when the machine's memory in use grows by more than
 *    BENCH_AGENT_RSS_LIMIT_GIB (MemAvailable, /proc/meminfo; the summed RSS is printed, but it counts
 *    the pages node processes share once per process, about 3× too much for executors).
 * Every child, executor and shell is killed at the end of each scenario (the tree, plus anything whose
 * working directory is in the scenario's data directory), then the data directory and database go.
 *
 * Environment (besides BENCH_STORAGE, BENCH_PG_URL, BENCH_REDIS_URL of bench/run.js):
 *   BENCH_AGENT_SIZES             concurrent conversations per scenario (default 50,200,500)
 *   BENCH_AGENT_LATENCY_N         sequential conversations measured for the first-action latency (default 50)
 *   BENCH_AGENT_GAP_MS            pause between those conversations, for the warm pool to refill (default 1500)
 *   BENCH_AGENT_HIGH_CONCURRENCY  OH_MAX_CONCURRENT_RUNS of the extra run of the largest size (default 50; 0 = none)
 *   BENCH_AGENT_PROVISION_N       executors started by the provisioning measurement (default 20; 0 = skip)
 *   BENCH_AGENT_RSS_LIMIT_GIB     abort a scenario when machine memory in use grows by more (default 16)
 *   BENCH_AGENT_TIMEOUT_S         per-scenario timeout (default 60 + 0.5 s per conversation)
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { request, keepAliveAgent, runPool } = require('./lib/load');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { summarize, ms, int } = require('./lib/stats');
const { processTable, tree, treeMemory, treePss, pssBytes, killTree, readStat } = require('./lib/proctree');
const storage = require('./lib/storage');
const { berthEnv } = require('./lib/berth');

const BENCH = 'agent';
const API_KEY = 'bench-key';
const AUTH = { 'X-Session-API-Key': API_KEY };
const HOST = '127.0.0.1';
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const TARGET_FIRST_ACTION_P50_MS = 50;
const LATENCY_WARMUP = 5;
const CREATE_CONCURRENCY = 16;
const SAMPLE_MS = 1000;
const STALL_MS = 60_000; // no run reached a terminal status for this long: give up on the rest
const TERMINAL = new Set(['finished', 'error', 'stuck']);
const DEFAULT_RUNS = 10; // OH_MAX_CONCURRENT_RUNS default (libs/config)
const MIN_AVAILABLE = 2 * GiB; // abort a scenario when the machine gets this close to running out

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms precision

const NOISY_OTHER_CPU = 0.15; // cores used by unrelated processes above which a scenario is flagged [disturbed]

/**
 * CPU over a window, from two full /proc tables: Berth's tree (processes under Berth at the end of the
 * window: the root's delta, children and deeper processes whole — they start in the window — and
 * what the tree's processes reaped), this process, PostgreSQL and Redis (all `postgres` /
 * `redis-server` processes), and `other`: every other process's CPU and what it
 * reaped (another test run's children), in cores — should be ~0 on a quiet machine. (Machine-wide
 * /proc/stat is not used: under this fork-heavy load it reads ~10-20% more busy time than all
 * processes together account for.)
 */
function cpuWindow(rootPid) {
  const t0 = now();
  const key = (p) => `${p.pid}:${p.startTicks}`;
  const before = new Map([...processTable().values()].map((p) => [key(p), p]));
  const tree0 = treeMemory(rootPid).cpuSeconds;
  return () => {
    const seconds = (now() - t0) / 1000;
    const table = processTable();
    const t = treeMemory(rootPid, table).cpuSeconds;
    const inTree = new Set(tree(rootPid, table).map((p) => p.pid));
    const out = {
      seconds,
      berth: t.root - tree0.root,
      executors: t.children,
      shells: t.deeper,
      reaped: t.reaped - tree0.reaped,
      bench: 0,
      postgres: 0,
      redis: 0,
      other: 0,
    };
    for (const p of table.values()) {
      if (inTree.has(p.pid)) continue;
      const p0 = before.get(key(p));
      const d = p.cpuSeconds - (p0 ? p0.cpuSeconds : 0);
      if (p.pid === process.pid) out.bench = d;
      else if (p.comm === 'postgres') out.postgres += d; // in embedded mode: background work of earlier scenarios
      else if (p.comm === 'redis-server') out.redis += d;
      else out.other += d + p.reapedCpuSeconds - (p0 ? p0.reapedCpuSeconds : 0);
    }
    out.other /= seconds;
    out.disturbed = out.other > NOISY_OTHER_CPU;
    return out;
  };
}

const fmtCpu = (c) =>
  `CPU s: Berth ${c.berth.toFixed(1)}, executors ${c.executors.toFixed(1)}, shells ${c.shells.toFixed(1)}` +
  `${c.reaped >= 0.05 ? `, exited commands ${c.reaped.toFixed(1)}` : ''}, bench+stub ${c.bench.toFixed(1)}` +
  `${c.postgres >= 0.05 ? `, postgres ${c.postgres.toFixed(1)}` : ''}${c.redis >= 0.05 ? `, redis ${c.redis.toFixed(1)}` : ''} over ${c.seconds.toFixed(1)} s on ${os.cpus().length} cores; ` +
  `other processes ${c.other > 2 ? '>200' : Math.round(c.other * 100)}% of a core${c.disturbed ? ' — DISTURBED: other processes were busy, figures are pessimistic' : ''}`;

/** MemAvailable of the machine in bytes (/proc/meminfo); null where unavailable. */
function memAvailable() {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'latin1'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
const sleep = (t) => new Promise((r) => setTimeout(r, t));
const gib = (b) => (b / GiB).toFixed(2);
const mib = (b) => int(b / MiB);

function intEnv(name, fallback, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new Error(`${name} must be a number ≥ ${min}, got "${raw}"`);
  return v;
}

function agentOptions() {
  const sizes = (process.env.BENCH_AGENT_SIZES || '50,200,500')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`BENCH_AGENT_SIZES must be a list of positive integers, got "${process.env.BENCH_AGENT_SIZES}"`);
  const timeoutS = process.env.BENCH_AGENT_TIMEOUT_S;
  return {
    sizes,
    latencyN: intEnv('BENCH_AGENT_LATENCY_N', 50, 1),
    gapMs: intEnv('BENCH_AGENT_GAP_MS', 1500, 0),
    highConcurrency: intEnv('BENCH_AGENT_HIGH_CONCURRENCY', 50, 0),
    provisionN: intEnv('BENCH_AGENT_PROVISION_N', 20, 0),
    rssLimit: intEnv('BENCH_AGENT_RSS_LIMIT_GIB', 16, 0.1) * GiB,
    timeoutMs: (n) => (timeoutS ? Number(timeoutS) * 1000 : 60_000 + 500 * n),
  };
}


/** `2026-11-25T10:11:12.123456` (naive local time, µs) → epoch ms. */
function parseNaive(ts) {
  if (typeof ts !== 'string') return NaN;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?$/.exec(ts);
  if (!m) return Date.parse(ts);
  return Date.parse(m[1]) + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0);
}

function firstUserText(req) {
  const first = (req.body.messages || []).find((m) => m.role === 'user');
  if (!first) return '';
  if (typeof first.content === 'string') return first.content;
  return (first.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('');
}

/** The LLM stub (in this process) with the bench script, noting when each conversation's first request arrived. */
async function startStub(ctx) {
  const { LlmStub } = require(path.join(ctx.root, 'dist/libs/testing/src/index.js'));
  const llm = new LlmStub();
  await llm.start();
  ctx.defer('stop LLM stub', () => llm.stop());
  const firstRequestAt = new Map();
  llm.fallbackScript((req, turn) => {
    if (turn === 0) firstRequestAt.set(firstUserText(req), now());
    return turn === 0 ? { toolCalls: [{ name: 'terminal', arguments: { command: 'echo hi' } }] } : { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] };
  });
  return {
    llm,
    firstRequestAt,
    /** Forgets recorded requests (the stub keeps them all for assertions): keeps this process small. */
    reset() {
      llm.requests.length = 0;
      firstRequestAt.clear();
    },
  };
}

function conversationBody(llmUrl, text) {
  return JSON.stringify({
    agent: { kind: 'Agent', llm: { model: 'openai/stub', api_key: 'k', base_url: llmUrl, num_retries: 0 }, tools: [{ name: 'terminal' }] },
    workspace: { working_dir: '/workspace/project' },
    initial_message: { role: 'user', content: [{ type: 'text', text }] },
  });
}

// ---------------------------------------------------------------------------------------------
// 0. Cold executor start

/** Milliseconds from spawning a bare `node -e` to its first line on stdout (the floor of any executor start). */
function bareNodeStart() {
  const { spawn } = require('node:child_process');
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(process.execPath, ['-e', 'process.stdout.write("ready\\n"); setTimeout(() => {}, 10000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.on('error', reject);
    child.stdout.once('data', () => {
      const t = now() - t0;
      child.kill('SIGKILL');
      resolve(t);
    });
  });
}

async function benchProvision(ctx, n) {
  const { log } = ctx;
  const { LocalSandboxDriver, ExecutorClient } = require(path.join(ctx.root, 'dist/libs/sandbox/src/index.js'));
  const dataDir = ctx.tmpdir('berth-bench-provision-');
  const driver = new LocalSandboxDriver({ dataDir });
  ctx.defer('close provisioning driver', () => driver.close());
  const seq = [];
  const firstCommand = [];
  const handles = [];
  try {
    // One unrecorded start: the file system and the node binary are warm afterwards, as in a running server.
    handles.push(await driver.provision({ id: randomUUID() }));
    for (let i = 0; i < n; i++) {
      const t0 = now();
      const h = await driver.provision({ id: randomUUID() });
      seq.push(now() - t0);
      handles.push(h);
    }
    // First terminal command of an executor: starts its bash session.
    const withCommand = handles.slice(1, 1 + Math.min(10, Math.ceil(n / 2)));
    const idleOnes = handles.slice(1 + withCommand.length);
    for (const h of withCommand) {
      const client = new ExecutorClient(h);
      const t0 = now();
      await client.execute({ conversation_id: randomUUID(), working_dir: path.join(h.root, 'workspace/project'), tool: 'terminal', action: { command: 'echo hi' } });
      firstCommand.push(now() - t0);
    }
    await sleep(200);
    const idle = idleOnes.map((h) => {
      const st = readStat(h.pid) || {};
      return { rss: st.rssBytes, pss: pssBytes(h.pid), cpu: st.cpuSeconds };
    });
    const bare = [];
    for (let i = 0; i < Math.min(n, 10); i++) bare.push(await bareNodeStart());
    const withShell = withCommand.map((h) => {
      // executor + its shell(s)
      const t = tree(h.pid);
      return { rss: t.reduce((s, p) => s + p.rssBytes, 0), pss: t.reduce((s, p) => s + (pssBytes(p.pid) || 0), 0) };
    });
    const t0 = now();
    const burst = await Promise.all(
      Array.from({ length: n }, async () => {
        const s = now();
        const h = await driver.provision({ id: randomUUID() });
        handles.push(h);
        return now() - s;
      }),
    );
    const burstWall = now() - t0;
    const s = summarize(seq);
    const b = summarize(burst);
    const mean = (xs, k) => (xs.length ? xs.reduce((a, x) => a + (x[k] || 0), 0) / xs.length : NaN);
    const fc = summarize(firstCommand);
    log(`  cold executor start, LocalSandboxDriver.provision (${n} one after another, in this process):`);
    log(`    p50 ${ms(s.p50)} ms, p95 ${ms(s.p95)}, max ${ms(s.max)}, min ${ms(s.min)}`);
    log(`    ${n} at once: wall ${ms(burstWall)} ms (${ms(burstWall / n)} ms per executor; each waited p50 ${ms(b.p50)} ms, max ${ms(b.max)})`);
    log(`    CPU per executor start (idle ones, from /proc): ${ms(mean(idle, 'cpu') * 1000)} ms; for scale, a bare \`node -e\` to its first output line: p50 ${ms(summarize(bare).p50)} ms`);
    log(`    first terminal command of a fresh executor (starts its bash): p50 ${ms(fc.p50)} ms, max ${ms(fc.max)}`);
    log(
      `    memory per idle executor: RSS ${mib(mean(idle, 'rss'))} MiB, PSS ${mib(mean(idle, 'pss'))} MiB; ` +
        `after one terminal command (executor + bash): RSS ${mib(mean(withShell, 'rss'))} MiB, PSS ${mib(mean(withShell, 'pss'))} MiB`,
    );
    ctx.report({
      bench: BENCH,
      storage: '-',
      target: 'cold executor start (informational)',
      measured: `provision p50 ${ms(s.p50)} ms (p95 ${ms(s.p95)}); ${n} at once ${ms(burstWall)} ms; RSS ${mib(mean(withShell, 'rss'))} MiB per executor+bash`,
      ok: null,
    });
    return { p50: s.p50 };
  } finally {
    const t0 = now();
    await driver.close();
    log(`    (driver.close() stopped ${handles.length} executors in ${ms(now() - t0)} ms)`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Berth child with fresh storage

async function prepareStorage(ctx, mode, tag) {
  const { options } = ctx;
  if (mode === 'embedded') return { label: 'embedded (PGlite, in-process queue and bus)', env: {} };
  const pgProblem = await storage.pgProblem(options.pgAdminUrl);
  if (pgProblem) return { skip: `PostgreSQL not reachable at ${options.pgAdminUrl}: ${pgProblem}` };
  const db = await storage.createDatabase(options.pgAdminUrl, `berth_bench_agent_${process.pid}_${tag}`);
  ctx.defer(`drop database ${db.name}`, () => db.drop());
  const env = { DATABASE_URL: db.url };
  let label = `PostgreSQL (db ${db.name})`;
  let prefix = null;
  const redisProblem = await storage.redisProblem(options.redisUrl);
  if (redisProblem) {
    label += ` + in-process queue and bus (Redis unreachable: ${redisProblem})`;
  } else {
    prefix = `berth_bench_agent_${process.pid}_${tag}`;
    env.REDIS_URL = options.redisUrl;
    env.BERTH_QUEUE_PREFIX = prefix;
    ctx.defer(`delete redis keys ${prefix}:*`, () => storage.redisDeletePrefix(options.redisUrl, prefix));
    label += ` + Redis (prefix ${prefix})`;
  }
  return {
    label,
    env,
    db,
    async dispose() {
      await db.drop();
      if (prefix) await storage.redisDeletePrefix(options.redisUrl, prefix);
    },
  };
}

let gatewaySeq = 0;

/** A fresh Berth (data directory, database) — { target, handle, dataDir, label, stop() } or { skip }. */
async function startBerth(ctx, mode, extraEnv = {}) {
  const tag = String(++gatewaySeq);
  const store = await prepareStorage(ctx, mode, tag);
  if (store.skip) return store;
  const dataDir = ctx.tmpdir(`berth-bench-agent-${mode}-`);
  const port = await freePort();
  const env = berthEnv({
    OH_SESSION_API_KEYS_0: API_KEY,
    LOG_LEVEL: 'warn',
    BERTH_DATA_DIR: dataDir,
    OH_CONVERSATIONS_PATH: path.join(dataDir, 'conversations'),
    ...store.env,
    ...extraEnv,
  });
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  const handle = spawnNode(`berth[${mode}#${tag}]`, main, { args: ['--host', HOST, '--port', String(port)], env, cwd: ctx.root });
  let stopped = null;
  // Berth ending on its own (or killed by someone else) during a scenario: when and how.
  let died = null;
  const t0 = now();
  handle.exited.then((r) => {
    if (!stopped) died = { ...r, afterS: (now() - t0) / 1000, output: handle.output().trim().slice(-1500) };
  });
  const stop = async ({ force = false } = {}) => {
    if (!stopped) {
      stopped = (async () => {
        const k = await killTree(handle, { dir: dataDir, force });
        if (store.dispose) await store.dispose().catch((err) => ctx.log(`  ! clean-up of ${store.label}: ${err.message}`));
        fs.rmSync(dataDir, { recursive: true, force: true });
        return k;
      })();
    }
    return stopped;
  };
  ctx.defer(`stop berth[${mode}#${tag}] and its tree`, () => stop({ force: true }));
  const readyMs = await waitForHttp(handle, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  return { target: { host: HOST, port, pid: handle.pid }, handle, dataDir, label: store.label, readyMs, stop, died: () => died, isPostgres: Boolean(store.db) };
}

// ---------------------------------------------------------------------------------------------
// One conversation, watched on its event socket

/**
 * Creates a conversation and watches it: resolves the record once a terminal execution_status was
 * seen (or `deadline` passed, or `cancelled()`): { id, t0, tPosted, tOpen, tAction, actionTs, systemTs,
 * status, createError }. While the socket is down it polls GET /api/conversations/{id}.
 */
async function runConversation(berth, agent, llmUrl, text, { deadline, cancelled = () => false, waitForAction = false, onPosted = () => undefined } = {}) {
  const { WebSocket } = require('ws');
  const rec = { text, id: null, t0: now(), tPosted: NaN, tOpen: NaN, tAction: NaN, actionTs: NaN, systemTs: NaN, tTerminal: NaN, status: null, createError: null, socketProblem: null };
  let res;
  try {
    res = await request(agent, berth.target, { method: 'POST', path: '/api/conversations', headers: AUTH, body: conversationBody(llmUrl, text), readBody: true });
  } catch (err) {
    rec.createError = err.message;
    onPosted(rec);
    return rec;
  }
  rec.tPosted = now();
  if (res.status !== 201) {
    rec.createError = `status ${res.status}: ${String(res.body).slice(0, 200)}`;
    onPosted(rec);
    return rec;
  }
  rec.id = JSON.parse(res.body).id;
  onPosted(rec);
  const done = () => rec.status !== null && (!waitForAction || !Number.isNaN(rec.tAction));
  await new Promise((resolve) => {
    let ws = null;
    let finished = false;
    let pollTimer = null;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(guard);
      clearTimeout(pollTimer);
      if (ws) {
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        try {
          ws.terminate();
        } catch {
          /* closed */
        }
      }
      resolve();
    };
    const guard = setInterval(() => {
      if (now() > deadline || cancelled()) finish();
    }, 1000);
    const terminal = (status) => {
      if (rec.status === null && TERMINAL.has(status)) {
        rec.status = status;
        rec.tTerminal = now();
      }
    };
    const poll = async () => {
      if (finished) return;
      try {
        const r = await request(agent, berth.target, { path: `/api/conversations/${rec.id}`, headers: AUTH, readBody: true });
        if (r.status === 200) terminal(JSON.parse(r.body).execution_status);
      } catch {
        /* next time */
      }
      if (rec.status !== null) return finish();
      pollTimer = setTimeout(poll, 1000);
    };
    ws = new WebSocket(`ws://${HOST}:${berth.target.port}/sockets/events/${rec.id}?session_api_key=${API_KEY}&resend_mode=all`, { perMessageDeflate: false });
    ws.on('open', () => (rec.tOpen = now()));
    ws.on('message', (data) => {
      let e;
      try {
        e = JSON.parse(data.toString());
      } catch {
        return;
      }
      const t = now();
      if (e.kind === 'ActionEvent' && Number.isNaN(rec.tAction)) {
        rec.tAction = t;
        rec.actionTs = parseNaive(e.timestamp);
      } else if (e.kind === 'SystemPromptEvent' && Number.isNaN(rec.systemTs)) {
        rec.systemTs = parseNaive(e.timestamp);
      } else if (e.kind === 'ConversationStateUpdateEvent') {
        if (e.key === 'full_state' && e.value) terminal(e.value.execution_status);
        else if (e.key === 'execution_status') terminal(e.value);
      }
      if (done()) finish();
    });
    const fallBack = (why) => {
      if (finished || rec.status !== null) return finish();
      if (!rec.socketProblem) rec.socketProblem = why;
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws = null;
      poll();
    };
    ws.on('error', (err) => fallBack(`socket error: ${err.message}`));
    ws.on('close', (code, reason) => fallBack(`socket closed ${code} ${reason}`));
  });
  return rec;
}

/** Details of a failed or lost conversation: its status now, its error events, the tail of its executor log. */
async function explain(berth, agent, id) {
  const out = { status: null, errors: [], executorLog: null };
  try {
    const r = await request(agent, berth.target, { path: `/api/conversations/${id}`, headers: AUTH, readBody: true });
    out.status = r.status === 200 ? JSON.parse(r.body).execution_status : `GET ${r.status}`;
    for (const kind of ['ConversationErrorEvent', 'AgentErrorEvent']) {
      const e = await request(agent, berth.target, { path: `/api/conversations/${id}/events/search?kind=${kind}&limit=5`, headers: AUTH, readBody: true });
      if (e.status === 200) for (const item of JSON.parse(e.body).items) out.errors.push(`${kind}${item.code ? ` ${item.code}` : ''}: ${String(item.detail ?? item.error).slice(0, 300)}`);
    }
  } catch (err) {
    out.status = `unreachable (${err.message})`;
  }
  try {
    const text = fs.readFileSync(path.join(berth.dataDir, 'sandboxes', id, '.berth/executor.log'), 'utf8').trim();
    out.executorLog = text ? text.slice(-400) : '(empty)';
  } catch {
    out.executorLog = '(no executor log: no sandbox was started)';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. create → first ActionEvent

async function benchFirstAction(ctx, mode, stub, aopts) {
  const { log } = ctx;
  const berth = await startBerth(ctx, mode);
  if (berth.skip) return berth;
  log(`  [${mode}] storage: ${berth.label}`);
  log(`  [${mode}] Berth ready in ${int(berth.readyMs)} ms (pid ${berth.handle.pid}, OH_MAX_CONCURRENT_RUNS=${DEFAULT_RUNS})`);
  const agent = keepAliveAgent(4);
  const recs = [];
  let cpu = null;
  let failures = 0;
  let firstFailure = null;
  try {
    for (let i = 0; i < LATENCY_WARMUP + aopts.latencyN; i++) {
      if (i === LATENCY_WARMUP) cpu = cpuWindow(berth.handle.pid);
      const text = `bench first-action ${mode} #${i} ${randomUUID()}`;
      const rec = await runConversation(berth, agent, stub.llm.url, text, { deadline: now() + 30_000, waitForAction: true });
      rec.llmAt = stub.firstRequestAt.get(text);
      // The driver writes <id>.env.json just before it spawns the executor (a run's sandbox id is its conversation id).
      try {
        rec.provisionAt = fs.statSync(path.join(berth.dataDir, 'sandboxes', `${rec.id}.env.json`)).mtimeMs;
      } catch {
        rec.provisionAt = NaN;
      }
      if (rec.createError || rec.status !== 'finished' || Number.isNaN(rec.tAction)) {
        failures++;
        if (!firstFailure) firstFailure = rec.createError || `status ${rec.status}${rec.id ? ` (${rec.id})` : ''}${Number.isNaN(rec.tAction) ? ', no ActionEvent' : ''}`;
        continue;
      }
      if (i >= LATENCY_WARMUP) recs.push(rec);
      // Conversations a moment apart, so each finds the warm pool refilled (BERTH_WARM_POOL_SIZE, default 2).
      if (aopts.gapMs) await new Promise((resolve) => setTimeout(resolve, aopts.gapMs));
    }
  } finally {
    agent.destroy();
  }
  const c = cpu ? cpu() : null;
  const s = summarize(recs.map((r) => r.tAction - r.t0));
  const part = (f) => summarize(recs.map(f).filter(Number.isFinite));
  const rows = [
    ['POST /api/conversations → 201', part((r) => r.tPosted - r.t0)],
    ['201 → SystemPromptEvent (run taken, executor started)', part((r) => r.systemTs - r.tPosted)],
    ['  201 → sandbox provisioning begins (run taken, rows)', part((r) => r.provisionAt - r.tPosted)],
    ['  provisioning begins → SystemPromptEvent (executor)', part((r) => r.systemTs - r.provisionAt)],
    ['SystemPromptEvent → LLM stub receives request', part((r) => r.llmAt - r.systemTs)],
    ['LLM request → ActionEvent recorded', part((r) => r.actionTs - r.llmAt)],
    ['ActionEvent recorded → frame received', part((r) => r.tAction - r.actionTs)],
    ['  (201 → socket open)', part((r) => r.tOpen - r.tPosted)],
    ['create → ActionEvent recorded (server side)', part((r) => r.actionTs - r.t0)],
    ['create → ActionEvent frame (measured)', s],
    ['create → run finished (status on the socket)', part((r) => r.tTerminal - r.t0)],
  ];
  log(`  [${mode}] create → first ActionEvent, ${recs.length} conversations one after another (after ${LATENCY_WARMUP} warm-up)${failures ? `; ${failures} failed, first: ${firstFailure}` : ''}:`);
  log(`    ${'step'.padEnd(56)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`);
  for (const [label, v] of rows) log(`    ${label.padEnd(56)} ${ms(v.p50).padStart(8)} ${ms(v.p95).padStart(8)} ${ms(v.p99).padStart(8)} ${ms(v.max).padStart(8)}`);
  log('    (server timestamps are the gateway\'s wall clock, same machine; steps may be off by clock granularity)');
  if (c) log(`    ${fmtCpu(c)}`);
  const k = await berth.stop();
  log(`  [${mode}] stopped Berth (${k.graceful ? 'SIGTERM' : 'SIGKILL'}, ${k.seconds.toFixed(1)} s; ${k.killed} leftover process(es) SIGKILLed${k.stillAlive ? `, ${k.stillAlive} STILL ALIVE` : ''})`);
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `create → first ActionEvent p50 ≤ ${TARGET_FIRST_ACTION_P50_MS} ms`,
    measured: `p50 ${ms(s.p50)} ms, p95 ${ms(s.p95)}, p99 ${ms(s.p99)} (n=${recs.length}${failures ? `, ${failures} failed` : ''})${c && c.disturbed ? ' [disturbed]' : ''}`,
    ok: recs.length > 0 && s.p50 <= TARGET_FIRST_ACTION_P50_MS && failures === 0,
  });
  return { latency: s };
}

// ---------------------------------------------------------------------------------------------
// 2. N concurrent conversations

async function benchConcurrent(ctx, mode, stub, aopts, n, runs) {
  const { log } = ctx;
  const label = `${n} conversations, OH_MAX_CONCURRENT_RUNS=${runs}`;
  const berth = await startBerth(ctx, mode, runs === DEFAULT_RUNS ? {} : { OH_MAX_CONCURRENT_RUNS: String(runs) });
  if (berth.skip) return berth;
  stub.reset();
  const pid = berth.handle.pid;
  const peak = { totalRss: 0, rootRss: 0, childCount: 0, processes: 0, atCompleted: 0, memGrowth: 0 };
  const avail0 = memAvailable();
  let aborted = null;
  let samples = 0;
  let completed = 0;
  const recs = [];
  const sample = () => {
    const m = treeMemory(pid, processTable());
    if (!m.processes) return m;
    samples++;
    if (m.totalRss > peak.totalRss) Object.assign(peak, { totalRss: m.totalRss, atCompleted: completed, atChildren: m.childCount });
    peak.rootRss = Math.max(peak.rootRss, m.rootRss);
    peak.childCount = Math.max(peak.childCount, m.childCount);
    peak.processes = Math.max(peak.processes, m.processes);
    // The guard: memory the machine lost since the scenario began (RSS sums count the pages that
    // node processes share once per process — about 3× too much for executors, see PSS).
    const avail = memAvailable();
    if (avail !== null && avail0 !== null) {
      const growth = avail0 - avail;
      peak.memGrowth = Math.max(peak.memGrowth, growth);
      if (!aborted && (growth > aopts.rssLimit || avail < MIN_AVAILABLE)) {
        aborted = `machine memory in use grew by ${gib(growth)} GiB (limit ${gib(aopts.rssLimit)} GiB; ${gib(avail)} GiB still available), tree RSS ${gib(m.totalRss)} GiB, ${m.childCount} executors`;
      }
    } else if (!aborted && m.totalRss > aopts.rssLimit) {
      aborted = `total RSS ${gib(m.totalRss)} GiB > limit ${gib(aopts.rssLimit)} GiB (${m.childCount} executors)`;
    }
    return m;
  };
  const idle = sample();
  const sampler = setInterval(sample, SAMPLE_MS);
  const cpu = cpuWindow(pid);
  const agent = keepAliveAgent(CREATE_CONCURRENCY + 8);
  const t0 = now();
  const deadline = t0 + aopts.timeoutMs(n);
  let lastProgress = now();
  let stalled = false;
  const cancelled = () => Boolean(aborted) || stalled;
  const watchers = [];
  let createFailed = 0;
  let firstCreateError = null;
  // Create all N (16 POSTs in flight); each is watched on its own socket as soon as it exists.
  const created = runPool(n, CREATE_CONCURRENCY, async (i) => {
    if (cancelled()) return 'cancelled';
    const text = `bench concurrent ${mode} n=${n} runs=${runs} #${i} ${randomUUID()}`;
    return new Promise((resolvePost) => {
      const watch = runConversation(berth, agent, stub.llm.url, text, { deadline, cancelled, onPosted: (rec) => resolvePost(rec.createError || true) }).then((rec) => {
        if (rec.status) {
          completed++;
          lastProgress = now();
        }
        resolvePost(rec.createError || true);
        return rec;
      });
      watchers.push(watch);
    });
  });
  // Stall watchdog: no run reached a terminal status for STALL_MS.
  const watchdog = setInterval(() => {
    if (now() - lastProgress > STALL_MS) stalled = true;
  }, 1000);
  const createStats = await created;
  const tCreated = now();
  for (const w of watchers) recs.push(await w);
  const wall = (Math.max(...recs.map((r) => (Number.isFinite(r.tTerminal) ? r.tTerminal : 0)), tCreated) - t0) / 1000;
  clearInterval(watchdog);
  clearInterval(sampler);
  const end = sample();
  const c = cpu();
  const pss = treePss(pid, processTable());
  const died = berth.died();
  agent.destroy();

  for (const r of recs) {
    if (!r.createError) continue;
    createFailed++;
    if (!firstCreateError) firstCreateError = r.createError;
  }
  const notCreated = n - recs.length; // cancelled (abort / stall) before their POST
  const byStatus = {};
  for (const r of recs) if (!r.createError) byStatus[r.status || 'lost'] = (byStatus[r.status || 'lost'] || 0) + 1;
  const finished = byStatus.finished || 0;
  const lost = byStatus.lost || 0;
  const failures = n - finished - lost; // error, stuck, create failed or never created
  const toAction = summarize(recs.filter((r) => Number.isFinite(r.tAction)).map((r) => r.tAction - r.t0));
  const toEnd = summarize(recs.filter((r) => r.status === 'finished').map((r) => r.tTerminal - r.t0));
  const llmRequests = stub.llm.requests.length;

  log(`\n  [${mode}] ${label} — ${berth.label}; Berth ready in ${int(berth.readyMs)} ms`);
  log(
    `    created ${int(n - createFailed)}/${n} in ${((tCreated - t0) / 1000).toFixed(2)} s (${CREATE_CONCURRENCY} POSTs in flight)` +
      `${createFailed ? `; ${createFailed} create(s) failed, first: ${firstCreateError}` : ''}${notCreated ? `; ${notCreated} never created (cancelled)` : ''}` +
      `${createStats.failed && !createFailed && !notCreated ? `; pool: ${createStats.firstError}` : ''}`,
  );
  log(
    `    terminal status: ${Object.entries(byStatus)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; wall ${wall.toFixed(1)} s (first POST → last terminal status), ${(finished / wall).toFixed(1)} runs/s` +
      `${aborted ? `; ABORTED: ${aborted}` : ''}${stalled ? `; gave up after ${STALL_MS / 1000} s without progress` : ''}` +
      `${!aborted && !stalled && lost ? `; timeout ${(aopts.timeoutMs(n) / 1000).toFixed(0)} s` : ''}`,
  );
  log(`    per conversation: create → first ActionEvent p50 ${ms(toAction.p50)} ms, p99 ${ms(toAction.p99)}; create → finished p50 ${ms(toEnd.p50)} ms, p99 ${ms(toEnd.p99)}, max ${ms(toEnd.max)}`);
  log(`    LLM stub requests: ${int(llmRequests)} (2 per finished run expected: ${int(2 * finished)})`);
  const exec = end.childCount ? end.childRss / end.childCount : NaN;
  log(
    `    memory: idle Berth ${mib(idle.rootRss)} MiB RSS; peak Berth ${mib(peak.rootRss)} MiB; peak tree ${gib(peak.totalRss)} GiB RSS ` +
      `(${peak.atChildren} executors, ${peak.processes} processes at most; ${samples} samples, every ${SAMPLE_MS / 1000} s); ` +
      `machine memory in use grew by ${gib(peak.memGrowth)} GiB at most`,
  );
  log(
    `    at the end: ${end.childCount} executors ${gib(end.childRss)} GiB RSS (${mib(exec)} MiB each), ${end.deeperCount} shells/commands ${mib(end.deeperRss)} MiB, ` +
      `Berth ${mib(end.rootRss)} MiB; PSS of the tree ${pss ? `${gib(pss.total)} GiB (executors ${gib(pss.children)} GiB = ${mib(pss.children / Math.max(1, end.childCount))} MiB each)` : 'n/a'}`,
  );
  if (!died) log(`    ${fmtCpu(c)}`);
  if (died) {
    log(
      `    ! Berth (pid ${pid}) EXITED during the scenario, ${died.afterS.toFixed(1)} s after it was started: code ${died.code}, signal ${died.signal}` +
        `${died.code === 0 || died.signal === 'SIGTERM' ? ' (a graceful shutdown: Berth was sent a termination signal — not by this bench)' : ''}`,
    );
    if (died.output) log(`    its last output:\n${died.output.replace(/^/gm, '      ')}`);
  }
  // Why did runs fail or get lost?
  const bad = recs.filter((r) => !r.createError && r.status !== 'finished');
  if (bad.length) {
    const ea = keepAliveAgent(2);
    const reasons = new Map();
    for (const r of bad.slice(0, 200)) {
      const x = await explain(berth, ea, r.id);
      const key = `${r.status || 'lost'} (now ${x.status}): ${x.errors[0] || 'no error event'}`.replace(/[0-9a-f]{32}|[0-9a-f-]{36}/g, '…');
      if (!reasons.has(key)) reasons.set(key, { count: 0, example: r.id, log: x.executorLog, socket: r.socketProblem });
      reasons.get(key).count++;
    }
    ea.destroy();
    log(`    failed or lost (${bad.length}; first ${Math.min(bad.length, 200)} examined):`);
    for (const [key, v] of reasons) {
      log(`      ${v.count}× ${key}`);
      log(`         e.g. ${v.example}${v.socket ? `; ${v.socket}` : ''}; executor log tail: ${String(v.log).replace(/\s+/g, ' ').slice(0, 300)}`);
    }
  }
  if (bad.length || createFailed) {
    const out = berth.handle.output().trim();
    if (out && !died) log(`    Berth stderr/stdout tail:\n${out.slice(-2500).replace(/^/gm, '      ')}`);
  }
  const k = await berth.stop({ force: Boolean(aborted) });
  log(
    `    stopped: ${k.graceful ? 'SIGTERM' : 'SIGKILL'} in ${k.seconds.toFixed(1)} s; ${k.leftover} descendant(s) outlived Berth's own shutdown, ` +
      `${k.killed} SIGKILLed${k.stillAlive ? `, ${k.stillAlive} STILL ALIVE` : ''}`,
  );
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `${n} concurrent runs (runs=${runs}): all finish, none lost`,
    measured:
      `${aborted ? 'ABORTED (memory); ' : ''}${died ? `Berth EXITED (${died.signal || `code ${died.code}`}) after ${died.afterS.toFixed(0)} s; ` : ''}${finished}/${n} finished, ${failures} failed, ${lost} lost; wall ${wall.toFixed(1)} s; ` +
      `peak RSS ${gib(peak.totalRss)} GiB (Berth ${mib(peak.rootRss)} MiB + ${peak.atChildren} executors)${pss ? `, PSS ${gib(pss.total)} GiB` : ''}${c.disturbed ? ' [disturbed]' : ''}`,
    ok: !aborted && !died && finished === n,
  });
  return { peakRss: peak.totalRss, memGrowth: peak.memGrowth, finished, aborted };
}

async function run(ctx) {
  const { options, log } = ctx;
  const aopts = agentOptions();
  for (const f of ['dist/apps/gateway/src/main.js', 'dist/apps/executor/src/main.js', 'dist/libs/testing/src/index.js', 'dist/libs/sandbox/src/index.js']) {
    if (!fs.existsSync(path.join(ctx.root, f))) throw new Error(`${f} is missing; run \`npm run build\` (npm run bench does it)`);
  }
  log(
    `  sizes ${aopts.sizes.join(', ')}; ${aopts.latencyN} sequential runs for the first-action latency; extra run of the largest size at ` +
      `OH_MAX_CONCURRENT_RUNS=${aopts.highConcurrency || 'off'}; a scenario is aborted if machine memory in use grows by > ${gib(aopts.rssLimit)} GiB`,
  );
  log('  LLM: scripted stub in this process (turn 0: terminal `echo hi`, turn 1: finish); Berth --role all (gateway + worker); sandboxes = executor children');
  const stub = await startStub(ctx);

  if (aopts.provisionN) await benchProvision(ctx, aopts.provisionN);

  // A scenario that crashes (say, Berth does not start) is reported and the others still run.
  const attempt = async (mode, target, fn) => {
    try {
      return await fn();
    } catch (err) {
      log(`  ! [${mode}] ${target}: crashed: ${err.stack || err.message}`);
      ctx.report({ bench: BENCH, storage: mode, target, measured: `crashed: ${String(err.message).split('\n')[0].slice(0, 120)}`, ok: false });
      return null;
    }
  };
  for (const mode of options.storage) {
    log('');
    const first = await attempt(mode, `create → first ActionEvent p50 ≤ ${TARGET_FIRST_ACTION_P50_MS} ms`, () => benchFirstAction(ctx, mode, stub, aopts));
    if (first && first.skip) {
      log(`  [${mode}] skipped — ${first.skip}`);
      ctx.report({ bench: BENCH, storage: mode, target: 'all', measured: `skipped (${first.skip})`, ok: null });
      continue;
    }
    stub.reset();
    const largest = Math.max(...aopts.sizes);
    let largestRun = null;
    for (const n of aopts.sizes) {
      const r = await attempt(mode, `${n} concurrent runs (runs=${DEFAULT_RUNS})`, () => benchConcurrent(ctx, mode, stub, aopts, n, DEFAULT_RUNS));
      if (n === largest) largestRun = r;
    }
    const high = aopts.highConcurrency;
    // Only for the first storage mode (postgres by default): keeps the default run under ~6 minutes,
    // and 500 runs cost the same executor starts whatever the storage.
    if (high && high !== DEFAULT_RUNS && mode !== options.storage[0]) {
      log(`\n  [${mode}] ${largest} conversations at OH_MAX_CONCURRENT_RUNS=${high}: not run (only for the first storage mode, ${options.storage[0]}; BENCH_STORAGE=${mode} runs it)`);
    } else if (high && high !== DEFAULT_RUNS && largestRun) {
      // Executors outlive their runs, so both settings end with one per conversation: the default
      // run's memory is a fair estimate of this one's.
      if (largestRun.aborted || largestRun.memGrowth * 1.25 > aopts.rssLimit) {
        log(`\n  [${mode}] ${largest} conversations at OH_MAX_CONCURRENT_RUNS=${high}: skipped, the default run took ${gib(largestRun.memGrowth)} GiB (limit ${gib(aopts.rssLimit)} GiB)`);
        ctx.report({ bench: BENCH, storage: mode, target: `${largest} concurrent runs (runs=${high})`, measured: 'skipped (memory)', ok: null });
      } else {
        await attempt(mode, `${largest} concurrent runs (runs=${high})`, () => benchConcurrent(ctx, mode, stub, aopts, largest, high));
      }
    }
    stub.reset();
  }
}

module.exports = { run };
