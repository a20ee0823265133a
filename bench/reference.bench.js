'use strict';
/**
 * Side by side with the OpenHands reference agent server (run by bench/run.js; alone:
 * `node bench/run.js reference`). One run, one machine, one scripted LLM (LlmStub): the reference
 * (`python -m openhands.agent_server` 1.58.2, scripts/reference-server.js) and Berth (embedded
 * default: PGlite, in-process bus, dist/apps/gateway/src/main.js) are both up, and every scenario
 * runs on one, then the other, through the same HTTP/WebSocket calls:
 *
 *   - create → first event: POST /api/conversations with an initial message (run), the event socket
 *     opened as soon as it answers (resend_mode=all): ms until the first stored event arrives and
 *     until the agent's reply (the LLM's answer) arrives; N conversations one after another.
 *   - events search: a conversation filled to ≥ 1,000 events through POST …/events (user messages,
 *     not run); GET …/events/search?limit=100 (first page) and every page of the 1,000 (page_id walk).
 *   - conversation list: 2,000 conversations (POST, 8 at once: OpenHands answers 429 past 10); GET /api/conversations/search?limit=100.
 *   - GET /health and GET /api/conversations/count: closed-loop load, req/s.
 *   - socket fan-out: 100 /sockets/events subscribers; one message posted: ms until all 100 got it.
 *     OpenHands caps a conversation at 50 subscribers, its own internal ones included (PubSub
 *     max_subscribers=50; Berth's BERTH_WS_MAX_SUBSCRIBERS is 50 by default too), so 100 are spread
 *     evenly over conversations of at most 45 (3 × 33–34), one message posted to each at once.
 *   - RSS of the whole process tree, idle: after start-up, and again after everything above (the
 *     note splits it: the server process, then the rest — for Berth its sandbox executors: the warm
 *     pool, BERTH_WARM_POOL_SIZE=2 by default, and one per conversation that ran, until reaped).
 *
 * Berth runs with its defaults (embedded storage; BENCH_STORAGE does not apply here), started as
 * `npm start` does (the Node options of package.json's start script; see bench/lib/berth.js for
 * BENCH_BERTH_NODE_ARGS / BENCH_BERTH_ENV, which compare settings).
 *
 * Prints one table: row, reference, Berth, Berth vs reference (> 1 = Berth better), who is ahead.
 *
 * Environment (besides bench/run.js's BENCH_DURATION_MS, BENCH_WARMUP_MS, BENCH_CONCURRENCY,
 * BENCH_CONVERSATIONS):
 *   BENCH_QUICK=1            small N everywhere, to see that it runs (not for figures)
 *   BENCH_REF_CREATES        create → first event samples (default 30; quick 5)
 *   BENCH_REF_EVENTS         events in the searched conversation (default 1000; quick 200)
 *   BENCH_REF_SEQUENTIAL     sequential requests per search scenario (default 100; quick 20)
 *   BENCH_REF_SUBSCRIBERS    fan-out subscribers (default 100)
 *   BENCH_REF_FANOUTS        fan-out repetitions (default 10; quick 3)
 */
const path = require('node:path');
const { runLoad, runSequential, runPool, request, keepAliveAgent } = require('./lib/load');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { treeMemory, treePss, killTree } = require('./lib/proctree');
const { summarize, ms, int, table } = require('./lib/stats');
const { berthEnv, berthStart } = require('./lib/berth');
const { ANCHORS } = require('./lib/anchors');

const BENCH = 'reference';
const API_KEY = 'bench-reference-key';
const AUTH = { 'X-Session-API-Key': API_KEY };
const HOST = '127.0.0.1';
/** Below OpenHands' max_concurrent_runs (10; a create holds one while it initialises): more answer 429. */
const SEED_CONCURRENCY = 8;
/**
 * OpenHands' per-conversation pub/sub takes 50 subscribers, its own (state, auto-title, telemetry)
 * among them: sockets per conversation stay below that.
 */
const SUBSCRIBERS_PER_CONVERSATION = 45;
const SETTLE_MS = 3000;

function numEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return v;
}

function settings(options) {
  const quick = ['1', 'true', 'yes'].includes((process.env.BENCH_QUICK || '').toLowerCase());
  return {
    quick,
    creates: numEnv('BENCH_REF_CREATES', quick ? 5 : 30),
    events: numEnv('BENCH_REF_EVENTS', quick ? 200 : 1000),
    sequential: numEnv('BENCH_REF_SEQUENTIAL', quick ? 20 : 100),
    conversations: process.env.BENCH_CONVERSATIONS ? options.conversations : quick ? 200 : 2000,
    subscribers: numEnv('BENCH_REF_SUBSCRIBERS', 100),
    fanouts: numEnv('BENCH_REF_FANOUTS', quick ? 3 : 10),
    durationMs: process.env.BENCH_DURATION_MS ? options.durationMs : quick ? 1000 : options.durationMs,
    warmupMs: process.env.BENCH_WARMUP_MS ? options.warmupMs : quick ? 200 : options.warmupMs,
    concurrency: options.concurrency,
  };
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** The body of a conversation on `server`, with the scripted LLM; `text` starts a run. */
function conversationBody(server, llmUrl, text) {
  return {
    agent: { kind: 'Agent', llm: { model: 'openai/bench-model', api_key: 'sk-bench', base_url: llmUrl, num_retries: 0 }, tools: [] },
    workspace: { kind: 'LocalWorkspace', working_dir: server.workingDir },
    ...(text ? { initial_message: { role: 'user', content: [{ type: 'text', text }], run: true } } : {}),
  };
}

function userMessage(text) {
  return { role: 'user', content: [{ type: 'text', text }], run: false };
}

async function startReference(ctx) {
  const { startReferenceServer } = require(path.join(ctx.root, 'scripts/reference-server.js'));
  const ref = await startReferenceServer({ apiKey: API_KEY });
  ctx.defer('stop the reference server', () => ref.stop());
  return { name: 'reference', target: { host: HOST, port: ref.port, pid: ref.pid }, url: ref.url, pid: ref.pid, workingDir: ref.workspacePath, stop: () => ref.stop() };
}

async function startBerth(ctx) {
  const dataDir = ctx.tmpdir('berth-bench-reference-');
  const port = await freePort();
  const start = berthStart(ctx.root);
  const env = berthEnv({ OH_SESSION_API_KEYS_0: API_KEY, LOG_LEVEL: 'warn', BERTH_DATA_DIR: dataDir, OH_CONVERSATIONS_PATH: path.join(dataDir, 'conversations'), ...start.env });
  if (start.nodeArgs.length || Object.keys(start.env).length) ctx.log(`  Berth started with node ${start.nodeArgs.join(' ')} ${JSON.stringify(start.env)}`);
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  const handle = spawnNode('berth[embedded]', main, { args: ['--host', HOST, '--port', String(port)], nodeArgs: start.nodeArgs, env, cwd: ctx.root });
  const stop = () => killTree(handle, { dir: dataDir, force: true });
  ctx.defer('stop berth and its tree', stop);
  await waitForHttp(handle, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  return { name: 'Berth', target: { host: HOST, port, pid: handle.pid }, url: `http://${HOST}:${port}`, pid: handle.pid, workingDir: '/workspace/project', stop };
}

async function post(agent, server, path_, body) {
  const res = await request(agent, server.target, { method: 'POST', path: path_, headers: AUTH, body, readBody: true });
  if (res.status !== 200 && res.status !== 201) throw new Error(`${server.name}: POST ${path_} → ${res.status}: ${String(res.body).slice(0, 300)}`);
  return JSON.parse(res.body);
}

async function getJson(agent, server, path_) {
  const res = await request(agent, server.target, { path: path_, headers: AUTH, readBody: true });
  if (res.status !== 200) throw new Error(`${server.name}: GET ${path_} → ${res.status}: ${String(res.body).slice(0, 300)}`);
  return JSON.parse(res.body);
}

/**
 * Opens `/sockets/events/{id}`; resolves the socket once subscribed (its first frame, the full state:
 * both servers accept the socket before they subscribe it). Frames go to `onFrame(frame, tMs)`.
 */
function openSocket(server, id, query, onFrame) {
  const { WebSocket } = require('ws');
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/sockets/events/${id}?${query}`, { headers: AUTH });
    ws.on('message', (data) => {
      onFrame(JSON.parse(data.toString()), now());
      resolve(ws);
    });
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`${server.name}: socket closed ${code} before it opened`)));
  });
}

/** create → first stored event and → the agent's reply, on the event socket, `n` times one after another. */
async function createToFirstEvent(server, llmUrl, n) {
  const agent = keepAliveAgent(1);
  const first = [];
  const reply = [];
  let failures = 0;
  let firstError = null;
  try {
    for (let i = 0; i < n + 1; i++) {
      const t0 = now();
      const seen = { first: NaN, reply: NaN };
      let ws = null;
      try {
        const created = await post(agent, server, '/api/conversations', conversationBody(server, llmUrl, `bench create ${server.name} ${i} ${Date.now()}`));
        let done;
        const replied = new Promise((resolve) => (done = resolve));
        ws = await openSocket(server, created.id, 'resend_mode=all', (frame, t) => {
          if (frame.kind === 'ConversationStateUpdateEvent' && frame.key === 'full_state') return;
          if (Number.isNaN(seen.first)) seen.first = t - t0;
          if (frame.kind === 'MessageEvent' && frame.source === 'agent') {
            seen.reply = t - t0;
            done();
          }
        });
        await Promise.race([replied, new Promise((_, reject) => setTimeout(() => reject(new Error('no agent reply within 30 s')), 30_000))]);
        if (i > 0) {
          // The first one warms both up (imports, pools); it is not counted.
          first.push(seen.first);
          reply.push(seen.reply);
        }
      } catch (err) {
        failures++;
        if (!firstError) firstError = err.message;
      } finally {
        ws?.terminate();
      }
    }
  } finally {
    agent.destroy();
  }
  return { first: summarize(Float64Array.from(first)), reply: summarize(Float64Array.from(reply)), failures, firstError };
}

/** A conversation holding at least `events` events, written through POST …/events (the same on both). */
async function fillConversation(server, llmUrl, events) {
  const agent = keepAliveAgent(8);
  try {
    const { id } = await post(agent, server, '/api/conversations', conversationBody(server, llmUrl, null));
    let count = await getJson(agent, server, `/api/conversations/${id}/events/count`);
    let i = 0;
    while (count < events) {
      const batch = Math.max(1, Math.ceil((events - count) / 2));
      const r = await runPool(batch, 8, async () => {
        await post(agent, server, `/api/conversations/${id}/events`, userMessage(`message ${i++} with some words to search for`));
        return true;
      });
      if (r.failed) throw new Error(`${server.name}: filling the conversation: ${r.firstError}`);
      count = await getJson(agent, server, `/api/conversations/${id}/events/count`);
    }
    return { id, count };
  } finally {
    agent.destroy();
  }
}

/** Every page of the conversation's events, limit 100: ms per full walk. */
async function walkAllPages(server, id, n, expected) {
  const agent = keepAliveAgent(1);
  const samples = [];
  let errors = 0;
  let firstError = null;
  try {
    for (let i = 0; i < n + 2; i++) {
      const t0 = now();
      let seen = 0;
      try {
        for (let page = null; ; ) {
          const body = await getJson(agent, server, `/api/conversations/${id}/events/search?limit=100${page ? `&page_id=${page}` : ''}`);
          seen += body.items.length;
          if (!body.next_page_id) break;
          page = body.next_page_id;
        }
        if (seen !== expected) throw new Error(`walked ${seen} events, expected ${expected}`);
        if (i >= 2) samples.push(now() - t0);
      } catch (err) {
        errors++;
        if (!firstError) firstError = err.message;
      }
    }
  } finally {
    agent.destroy();
  }
  return { latency: summarize(Float64Array.from(samples)), errors, firstError };
}

async function seedConversations(server, llmUrl, count) {
  const agent = keepAliveAgent(SEED_CONCURRENCY);
  const body = conversationBody(server, llmUrl, null);
  try {
    const have = await getJson(agent, server, '/api/conversations/count');
    let busy = 0;
    const r = await runPool(Math.max(0, count - have), SEED_CONCURRENCY, async () => {
      for (;;) {
        const res = await request(agent, server.target, { method: 'POST', path: '/api/conversations', headers: AUTH, body });
        if (res.status !== 429) return res.status === 200 || res.status === 201 ? true : `status ${res.status}`;
        busy++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    return { ...r, busy, total: await getJson(agent, server, '/api/conversations/count') };
  } finally {
    agent.destroy();
  }
}

/** `subscribers` sockets spread evenly over conversations of at most 45; one message posted to each: ms until every socket got its own. */
async function fanOut(server, llmUrl, subscribers, rounds) {
  const agent = keepAliveAgent(4);
  const groups = [];
  const sockets = [];
  try {
    const conversations = Math.ceil(subscribers / SUBSCRIBERS_PER_CONVERSATION);
    for (let g = 0; g < conversations; g++) {
      const { id } = await post(agent, server, '/api/conversations', conversationBody(server, llmUrl, null));
      const group = { id, waiting: new Map() };
      const size = Math.floor(subscribers / conversations) + (g < subscribers % conversations ? 1 : 0);
      for (let s = 0; s < size; s++) {
        const ws = await openSocket(server, id, '', (frame, t) => {
          if (frame.kind !== 'MessageEvent') return;
          const text = frame.llm_message?.content?.[0]?.text;
          const w = group.waiting.get(text);
          if (w && !w.got.has(ws)) {
            w.got.add(ws);
            w.last = t;
            if (w.got.size === w.expected) w.resolve();
          }
        });
        sockets.push({ ws, group });
      }
      group.size = sockets.filter((s) => s.group === group).length;
      groups.push(group);
    }
    const samples = [];
    for (let r = 0; r < rounds + 1; r++) {
      const t0 = now();
      const arrivals = groups.map((group) => {
        const text = `fan-out ${r} ${group.id}`;
        return new Promise((resolve, reject) => {
          const w = { expected: group.size, got: new Set(), last: NaN, resolve: () => resolve(w) };
          group.waiting.set(text, w);
          setTimeout(() => reject(new Error(`${server.name}: only ${w.got.size}/${w.expected} subscribers got the message within 30 s`)), 30_000).unref();
          post(agent, server, `/api/conversations/${group.id}/events`, userMessage(text)).catch(reject);
        });
      });
      const all = await Promise.all(arrivals);
      if (r > 0) samples.push(Math.max(...all.map((w) => w.last)) - t0);
    }
    return { latency: summarize(Float64Array.from(samples)), sockets: sockets.length, conversations: groups.length };
  } finally {
    for (const { ws } of sockets) ws.terminate();
    agent.destroy();
  }
}

function memory(server) {
  const m = treeMemory(server.pid);
  const pss = treePss(server.pid);
  return { rss: m.totalRss, rootRss: m.rootRss, processes: m.processes, children: m.childCount, pss: pss ? pss.total : null };
}

/** Where a tree's memory is: the server process, and its children (Berth's sandbox executors and their shells). */
const memoryNote = (list) => list.map((m, i) => `${i ? 'Berth' : 'ref'}: ${mib(m.rootRss)} + ${m.processes - 1} more ${mib(m.rss - m.rootRss)}`).join('; ');

const mib = (b) => (b === null || b === undefined ? '-' : `${(b / 2 ** 20).toFixed(0)} MiB`);
const msCell = (v) => (Number.isFinite(v) ? `${ms(v)} ms` : '-');
const rpsCell = (v) => (Number.isFinite(v) ? `${int(v)}/s` : '-');

async function run(ctx) {
  const { log } = ctx;
  const s = settings(ctx.options);
  log(
    `  ${s.quick ? 'QUICK mode (small N: checks that it runs, figures are not comparable) — ' : ''}creates=${s.creates} events=${s.events} ` +
      `conversations=${s.conversations} subscribers=${s.subscribers}×${s.fanouts} sequential=${s.sequential} load=${s.durationMs} ms×${s.concurrency}`,
  );
  const { LlmStub } = require(path.join(ctx.root, 'dist/libs/testing/src/index.js'));
  const llm = new LlmStub();
  llm.fallbackScript(() => ({ text: 'Done, as scripted.' }));
  const llmUrl = await llm.start();
  ctx.defer('stop the LLM stub', () => llm.stop());

  log('  starting the reference server and Berth…');
  const servers = [await startReference(ctx), await startBerth(ctx)];
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const rows = [];
  const add = (label, better, [ref, berth], cell, note = '') => rows.push({ label, better, ref, berth, cell, note });
  const both = async (label, fn) => {
    const out = [];
    for (const server of servers) {
      log(`  ${label}: ${server.name}…`);
      out.push(await fn(server));
    }
    return out;
  };

  const idle = servers.map(memory);
  add('idle RSS after start (process tree)', 'lower', idle.map((m) => m.rss), mib, memoryNote(idle));
  add('idle PSS after start (process tree)', 'lower', idle.map((m) => m.pss), mib);

  const created = await both('create → first event', (server) => createToFirstEvent(server, llmUrl, s.creates));
  for (const [k, label] of [['first', 'create → first event on the socket'], ['reply', 'create → agent reply on the socket']]) {
    add(`${label}, median`, 'lower', created.map((c) => c[k].p50), msCell);
    add(`${label}, p95`, 'lower', created.map((c) => c[k].p95), msCell);
  }
  created.forEach((c, i) => c.failures && log(`    ! ${servers[i].name}: ${c.failures} create run(s) failed: ${c.firstError}`));

  const filled = await both(`filling a conversation to ${s.events} events`, (server) => fillConversation(server, llmUrl, s.events));
  const firstPage = await both('events search, first page', (server) =>
    runSequential(server.target, { path: `/api/conversations/${filled[servers.indexOf(server)].id}/events/search?limit=100`, headers: AUTH, n: s.sequential, warmup: 5 }),
  );
  add(`events search of ${s.events}: first page (100), median`, 'lower', firstPage.map((r) => r.latency.p50), msCell);
  add(`events search of ${s.events}: first page (100), p95`, 'lower', firstPage.map((r) => r.latency.p95), msCell);
  const walks = await both('events search, every page', (server) => {
    const f = filled[servers.indexOf(server)];
    return walkAllPages(server, f.id, Math.max(5, Math.ceil(s.sequential / 5)), f.count);
  });
  add(`events search of ${s.events}: all pages, median`, 'lower', walks.map((r) => r.latency.p50), msCell, `${filled[0].count} vs ${filled[1].count} events`);
  walks.forEach((w, i) => w.errors && log(`    ! ${servers[i].name}: ${w.errors} walk(s) failed: ${w.firstError}`));

  const seeded = await both(`seeding ${s.conversations} conversations`, (server) => seedConversations(server, llmUrl, s.conversations));
  seeded.forEach((r, i) => r.failed && log(`    ! ${servers[i].name}: ${r.failed} create(s) failed: ${r.firstError}`));
  seeded.forEach((r, i) => r.busy && log(`    ~ ${servers[i].name}: ${r.busy} create(s) answered 429 (run capacity) and were retried`));
  add(`conversation create rate (seeding, ${SEED_CONCURRENCY} at once)`, 'higher', seeded.map((r) => r.rate), rpsCell);
  const list = await both('conversation list', (server) =>
    runSequential(server.target, { path: '/api/conversations/search?limit=100', headers: AUTH, n: s.sequential, warmup: 5 }),
  );
  add(`conversation list of ${seeded[0].total} / ${seeded[1].total}: first page (100), median`, 'lower', list.map((r) => r.latency.p50), msCell);
  add(`conversation list of ${seeded[0].total} / ${seeded[1].total}: first page (100), p95`, 'lower', list.map((r) => r.latency.p95), msCell);

  const load = { durationMs: s.durationMs, warmupMs: s.warmupMs, concurrency: s.concurrency };
  const health = await both('GET /health load', (server) => runLoad(server.target, { path: '/health', ...load }));
  add(`GET /health, ${s.concurrency} at once`, 'higher', health.map((r) => r.rps), rpsCell, `p95 ${ms(health[0].latency.p95)} vs ${ms(health[1].latency.p95)} ms`);
  const count = await both('GET /api/conversations/count load', (server) => runLoad(server.target, { path: '/api/conversations/count', headers: AUTH, ...load }));
  add(`GET /api/conversations/count, ${s.concurrency} at once`, 'higher', count.map((r) => r.rps), rpsCell, `p95 ${ms(count[0].latency.p95)} vs ${ms(count[1].latency.p95)} ms`);
  for (const [name, results] of [['/health', health], ['count', count]]) {
    results.forEach((r, i) => r.errors && log(`    ! ${servers[i].name} ${name}: ${r.errors} error(s): ${r.firstError || JSON.stringify(r.statuses)}`));
    results.forEach((r, i) => r.clientCpu > 0.85 && log(`    ~ ${servers[i].name} ${name}: the load generator used ${Math.round(r.clientCpu * 100)}% of a core (client-bound)`));
  }

  const fan = await both(`fan-out to ${s.subscribers} subscribers`, (server) => fanOut(server, llmUrl, s.subscribers, s.fanouts));
  add(`fan-out to ${s.subscribers} subscribers over ${fan[0].conversations} conversations, median`, 'lower', fan.map((r) => r.latency.p50), msCell);
  add(`fan-out to ${s.subscribers} subscribers, p95`, 'lower', fan.map((r) => r.latency.p95), msCell);

  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const after = servers.map(memory);
  add('idle RSS after the runs (process tree)', 'lower', after.map((m) => m.rss), mib, memoryNote(after));

  log('');
  log(
    table(
      ['row', 'reference', 'Berth', 'Berth vs ref', 'ahead', 'note'],
      rows.map((r) => {
        const valid = Number.isFinite(r.ref) && Number.isFinite(r.berth) && r.ref > 0 && r.berth > 0;
        const ratio = valid ? (r.better === 'lower' ? r.ref / r.berth : r.berth / r.ref) : NaN;
        const ahead = !valid ? '?' : ratio > 1.02 ? 'Berth' : ratio < 0.98 ? 'reference' : 'even';
        ctx.report({
          bench: BENCH,
          storage: 'embedded',
          target: `${r.label}: Berth ahead`,
          measured: `${r.cell(r.berth)}${valid ? ` (${ratio.toFixed(2)}× the reference)` : ''}`,
          reference: r.cell(r.ref),
          anchor: ANCHORS.referenceSideBySide,
          ok: valid ? ratio > 1 : null,
        });
        return [r.label, r.cell(r.ref), r.cell(r.berth), valid ? `${ratio.toFixed(2)}×` : '-', ahead, r.note];
      }),
    ),
  );
  log('  (Berth vs ref: how many times better Berth is — reference/Berth for times and memory, Berth/reference for rates)');
  for (const server of servers.reverse()) await server.stop();
}

module.exports = { run };
