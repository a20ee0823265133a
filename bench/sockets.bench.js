'use strict';
/**
 * Event-socket fan-out (run by bench/run.js).
 *
 * For each storage mode, Berth as a child process (dist/apps/gateway/src/main.js, started as
 * `npm start` starts it) and, in this process, subscribers on `WS /sockets/events/{id}` of one
 * conversation (key in the `session_api_key` query, no `resend_mode`: live events only). Events are
 * published as a client publishes them: POST /api/conversations/{id}/events with a user message and
 * `run: false`, paced open-loop to the target rate with up to MAX_IN_FLIGHT requests outstanding.
 * Each POST stores and publishes two events (the MessageEvent and its `last_user_message_id`
 * ConversationStateUpdateEvent), so 1,000 events/s is 500 POSTs/s.
 *
 * Latency, two ways, both at every subscriber:
 * - "send → recv": from just before the POST is written to the MessageEvent's arrival (matched by a
 *   number in its text) — what a client sees, including the HTTP request path (auth, the
 *   conversation read, the log append) and any queueing of concurrent POSTs in the gateway;
 * - "stored → recv": from the event's own `timestamp` (set by the gateway when it makes the event,
 *   just before it is stored) to its arrival, for both events of a POST — the store (with its wait
 *   for the conversation's row, which concurrent POSTs take in turn), publish and fan-out. The
 *   timestamp has millisecond resolution (truncated), so this figure reads up to 1 ms high; same
 *   machine, same clock.
 * The p99 target (≤ 5 ms) is judged on "stored → recv", the publish → receive path; "send → recv"
 * is printed beside it.
 *
 * 0. The HTTP path alone: RATE asked for FANOUT_MS with no subscriber, for the gateway's CPU per
 *    POST; the difference with phase 1's is the fan-out's CPU per frame sent.
 * 1. Fan-out: SUBSCRIBERS subscribers, RATE events/s for FANOUT_MS (after WARMUP_MS unrecorded).
 *    If the HTTP path reaches less than RATE, again at the rate it reached, and (phase 2's baseline)
 *    at half of it: at the rate reached the POSTs queue in the gateway as they do at RATE (it is the
 *    saturation rate), at half of it the figures are the fan-out's. Per subscriber: the spread of
 *    their p99s and the fewest events any one received (within DRAIN_MS of the last answer).
 * 2. Stalled subscriber, at half the rate reached (or RATE): a baseline of STALL_EVENTS events,
 *    then one more subscriber that stops reading (its TCP socket paused) and another STALL_EVENTS
 *    events. The gateway's RSS moves over any 200 events (the heap breathes): the stalled
 *    subscriber's share is the growth beyond the baseline's (target < 5 MB); the others' p99 is
 *    compared with the baseline's.
 * 3. RECONNECTS cycles on a second conversation (open with resend_mode=all, take the whole replay,
 *    close), one after another, after RECONNECT_WARMUP unrecorded ones: open file descriptors of the
 *    gateway before and after (/proc/<pid>/fd, each after SETTLE_MS, every other connection closed),
 *    target: no more after; the ones that changed are named.
 * 4. PostgreSQL + Redis only — the worker's path, as an agent run publishes: this process plays the
 *    worker (dist's EventLog and RedisEventBus, the same database and Redis as the gateway). It
 *    stores FANOUT_MS worth of events first (persist, then publish, as the recorder does; stored
 *    ahead because one process here cannot also append 1,000 a second on two shared cores), then
 *    publishes them in order at RATE events/s; "publish → recv" is from just before each bus publish
 *    to its arrival at each of the SUBSCRIBERS. This is the fan-out on its own, with no HTTP path in
 *    front of it: the p99 target is judged on it.
 *    The embedded default has its bus inside the gateway's process: no outside publisher can reach it.
 * The gateway's per-conversation subscriber limit (BERTH_WS_MAX_SUBSCRIBERS, default 50) is raised
 * for the benchmark's 101 sockets; everything else is the default.
 */
const fs = require('node:fs');
const path = require('node:path');
const { WebSocket } = require('ws');
const { request, keepAliveAgent, Samples } = require('./lib/load');
const { freePort, spawnNode, waitForHttp, rssBytes, cpuMeter, cpuSecondsByName } = require('./lib/proc');
const { summarize, ms, int, table } = require('./lib/stats');
const { berthEnv, berthStart, prepareStorage } = require('./lib/berth');

const BENCH = 'sockets';
const API_KEY = 'bench-sockets-key';
const AUTH = { 'X-Session-API-Key': API_KEY };
const HOST = '127.0.0.1';
const SUBSCRIBERS = 100;
const RATE = 1000; // events/s
const EVENTS_PER_POST = 2;
const FANOUT_MS = 3000;
const WARMUP_MS = 1000;
const STALL_EVENTS = 200;
const RECONNECTS = 100;
const RECONNECT_WARMUP = 10;
const REPLAY_POSTS = 10;
const MAX_IN_FLIGHT = 64;
const SETTLE_MS = 1000;
/** How long a phase waits for every subscriber to have every event (what is still missing then counts as missed). */
const DRAIN_MS = 5000;
const NOISY_OTHER_CPU = 0.15; // cores used by unrelated processes above which a figure is flagged, as bench/gateway.bench.js
const TARGET_P99_MS = 5;
const TARGET_RSS_BYTES = 5 * 1024 * 1024;
/** The stalled run's p99 may exceed the baseline's by this much before it counts as delayed (run-to-run noise). */
const DELAY_TOLERANCE_MS = 1;
const MARK = Buffer.from('sockets-bench #');
const STAMP = Buffer.from('"timestamp":"');

const CONVERSATION_BODY = JSON.stringify({
  agent: { kind: 'Agent', llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-bench' }, tools: [{ name: 'terminal' }] },
  workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
});

const now = () => Number(process.hrtime.bigint()) / 1e6;
const wallNow = () => performance.timeOrigin + performance.now();
const sleep = (msec) => new Promise((r) => setTimeout(r, msec));
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const signed = (bytes) => `${bytes >= 0 ? '+' : ''}${mib(bytes)}`;

/** Send times (now()) of the POSTs, by the number in their message text. */
const sent = [];

/**
 * One subscriber: records, per phase, both latencies of every event it gets (see the header).
 * Frames are scanned as bytes, not parsed: 100 subscribers at 1,000 events/s would otherwise spend
 * the load generator's core on JSON.parse and inflate every figure.
 */
class Subscriber {
  constructor(url) {
    this.ws = new WebSocket(url);
    this.closeCode = null;
    this.reset();
    this.ready = new Promise((resolve, reject) => {
      this.ws.once('message', () => resolve(this)); // the full_state frame: subscribed
      this.ws.once('error', reject);
      this.ws.once('close', (code) => reject(new Error(`subscriber closed ${code} before its first frame`)));
    });
    this.ws.on('message', (data) => this.onFrame(data));
    this.ws.on('close', (code) => (this.closeCode = code));
    this.ws.on('error', () => undefined);
  }

  reset() {
    this.fromSend = new Samples(8192);
    this.fromStamp = new Samples(16384);
    this.messages = 0;
  }

  onFrame(data) {
    const t = now();
    const wall = wallNow();
    const s = data.indexOf(STAMP);
    if (s >= 0) this.fromStamp.push(wall - new Date(data.latin1Slice(s + STAMP.length, s + STAMP.length + 26)).getTime());
    const m = data.indexOf(MARK);
    if (m < 0) return;
    let i = 0;
    for (let k = m + MARK.length; data[k] >= 48 && data[k] <= 57; k++) i = i * 10 + data[k] - 48;
    this.messages++;
    if (sent[i] !== undefined) this.fromSend.push(t - sent[i]);
  }

  /** Stops reading: the gateway's writes pile up in the kernel and then in its own socket buffer. */
  stall() {
    this.ws._socket.pause();
  }

  close() {
    if (this.closeCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', resolve);
      this.ws.close();
    });
  }
}

function socketUrl(port, id, query = '') {
  return `ws://${HOST}:${port}/sockets/events/${id}?session_api_key=${API_KEY}${query}`;
}

/**
 * POSTs user messages at `rate` events/s (EVENTS_PER_POST a POST) until `events` are published or
 * `durationMs` has passed, open loop: each POST is due at its slot whether or not earlier ones
 * answered, with at most MAX_IN_FLIGHT outstanding. Returns { posts, errors, firstError, seconds,
 * rate } (rate: events stored per second, from the first send to the last answer).
 */
async function publish(agent, target, id, { rate, events = Infinity, durationMs = Infinity }) {
  const intervalMs = (1000 * EVENTS_PER_POST) / rate;
  const inFlight = new Set();
  let posts = 0;
  let errors = 0;
  let firstError = null;
  const t0 = now();
  while (posts * EVENTS_PER_POST < events && now() - t0 < durationMs) {
    const wait = t0 + posts * intervalMs - now();
    if (wait >= 1) await sleep(wait);
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    const i = sent.length;
    const body = JSON.stringify({ role: 'user', content: [{ type: 'text', text: `sockets-bench #${i}` }], run: false });
    sent.push(now());
    posts++;
    const p = request(agent, target, { method: 'POST', path: `/api/conversations/${id}/events`, headers: AUTH, body, readBody: true })
      .then(
        (res) => res.status === 200 || ((errors++, (firstError ??= `status ${res.status}: ${String(res.body).slice(0, 200)}`))),
        (err) => ((errors++, (firstError ??= err.message))),
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  const seconds = (now() - t0) / 1000;
  return { posts, errors, firstError, seconds, rate: ((posts - errors) * EVENTS_PER_POST) / seconds };
}

/**
 * The worker's part before a publish: `count` events stored through `log` (a hundred a
 * transaction), as a worker's recorder stores each before it publishes it. Their numbers are taken
 * in `sent` (publish times to come).
 */
async function storeAsWorker({ db, log, messageEvent }, id, count) {
  const stored = [];
  while (stored.length < count) {
    const batch = Array.from({ length: Math.min(100, count - stored.length) }, () => {
      const i = sent.length;
      sent.push(NaN);
      return { i, event: messageEvent('assistant', 'agent', [{ type: 'text', text: `sockets-bench #${i}` }]) };
    });
    await db.prisma.$transaction(async (tx) => {
      for (const e of batch) stored.push({ i: e.i, seq: await log.append(id, e.event, tx), json: JSON.stringify(e.event) });
    });
  }
  return stored;
}

/**
 * The worker's publish: the `stored` events on `bus` at `rate` events/s (ten every 10 ms, open
 * loop), in seq order on one connection as the recorder publishes them, the publish time of each in
 * `sent`. Same result shape as publish(): one "post" per event.
 */
async function publishAsWorker({ bus }, id, stored, rate) {
  const perBatch = Math.max(1, Math.round(rate / 100));
  const intervalMs = (1000 * perBatch) / rate;
  let errors = 0;
  let firstError = null;
  const t0 = now();
  for (let at = 0, batches = 0; at < stored.length; at += perBatch, batches++) {
    const wait = t0 + batches * intervalMs - now();
    if (wait >= 1) await sleep(wait);
    // ioredis pipelines these on its one connection, in order.
    await Promise.all(
      stored.slice(at, at + perBatch).map(({ i, seq, json }) => {
        sent[i] = now();
        return bus.publish(id, { seq, json }).catch((err) => {
          errors++;
          firstError ??= err.message;
        });
      }),
    );
  }
  const seconds = (now() - t0) / 1000;
  return { posts: stored.length, errors, firstError, seconds, rate: (stored.length - errors) / seconds };
}

/** Latency over all `subs` and per subscriber (their p99s), for the phase just recorded. */
function phaseFigures(subs, pub) {
  const concat = (key) => {
    const total = subs.reduce((n, s) => n + s[key].length, 0);
    const all = new Float64Array(total);
    let at = 0;
    for (const s of subs) {
      all.set(s[key].values(), at);
      at += s[key].length;
    }
    return all;
  };
  const perSub = subs.map((s) => summarize(s.fromSend.values()));
  const received = subs.map((s) => s.messages);
  return {
    fromSend: summarize(concat('fromSend')),
    fromStamp: summarize(concat('fromStamp')),
    subP99: summarize(perSub.map((s) => s.p99)),
    subMax: summarize(perSub.map((s) => s.max)),
    minReceived: Math.min(...received),
    expected: pub.posts - pub.errors,
  };
}

/** What each open file descriptor of `pid` is (socket:[inode], a path, anon_inode:…). */
function openFds(pid) {
  const fds = new Map();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.set(fd, fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return fds;
}

/** Descriptors opened (+) and closed (-) between two openFds() readings, with what they are. */
function fdChanges(before, after) {
  const opened = [...after].filter(([fd, what]) => before.get(fd) !== what).map(([fd, what]) => `+${fd} ${what}`);
  const closed = [...before].filter(([fd, what]) => after.get(fd) !== what).map(([fd, what]) => `-${fd} ${what}`);
  return [...opened, ...closed];
}

async function conversation(agent, target) {
  const res = await request(agent, target, { method: 'POST', path: '/api/conversations', headers: AUTH, body: CONVERSATION_BODY, readBody: true });
  if (res.status !== 201) throw new Error(`creating a conversation: ${res.status} ${res.body}`);
  return JSON.parse(res.body).id;
}

/** One reconnect: subscribe with the whole replay, take `frames` frames (full_state + history), close. */
function replayCycle(port, id, frames) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(socketUrl(port, id, '&resend_mode=all'));
    let got = 0;
    ws.on('message', () => {
      if (++got === frames) ws.close();
    });
    ws.on('error', reject);
    ws.on('close', (code) => (got >= frames ? resolve() : reject(new Error(`replay socket closed ${code} after ${got} of ${frames} frames`))));
  });
}

async function measure(ctx, mode) {
  const { log } = ctx;
  const store = await prepareStorage(ctx, mode, `berth_bench_sockets_${process.pid}`);
  if (!store) {
    ctx.report({ bench: BENCH, storage: mode, target: 'all', measured: 'skipped (storage unreachable)', ok: null });
    return;
  }
  const dataDir = ctx.tmpdir(`berth-bench-sockets-${mode}-`);
  const port = await freePort();
  const start = berthStart(ctx.root);
  const env = berthEnv({
    OH_SESSION_API_KEYS_0: API_KEY,
    LOG_LEVEL: 'warn',
    BERTH_DATA_DIR: dataDir,
    OH_CONVERSATIONS_PATH: path.join(dataDir, 'conversations'),
    BERTH_WS_MAX_SUBSCRIBERS: String(SUBSCRIBERS + 10),
    ...store.env,
    ...start.env,
  });
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing; run \`npm run build\` (npm run bench does it)`);
  const berth = spawnNode(`berth[${mode}]`, main, { args: ['--host', HOST, '--port', String(port)], nodeArgs: start.nodeArgs, env, cwd: ctx.root });
  ctx.defer(`stop berth[${mode}]`, () => berth.stop());
  const target = { host: HOST, port };
  const readyMs = await waitForHttp(berth, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  log(`\n  [${mode}] ${store.label}: ready in ${int(readyMs)} ms (pid ${berth.pid})`);

  const agent = keepAliveAgent(MAX_IN_FLIGHT);
  // The replay conversation is made first: its first message starts its sandbox, whose files must
  // be open before the descriptors are counted.
  const replayId = await conversation(agent, target);
  for (let k = 0; k < REPLAY_POSTS; k++) {
    const body = { role: 'user', content: [{ type: 'text', text: `replay ${k}` }], run: false };
    await request(agent, target, { method: 'POST', path: `/api/conversations/${replayId}/events`, headers: AUTH, body });
  }
  const history = Number((await request(agent, target, { path: `/api/conversations/${replayId}/events/count`, headers: AUTH, readBody: true })).body);
  const id = await conversation(agent, target);
  const dbProbe = store.db ? { db: () => cpuSecondsByName('postgres') } : {};

  // 0. The HTTP path alone (no subscriber): the gateway's CPU per POST, to tell the fan-out's share.
  await publish(agent, target, id, { rate: RATE, durationMs: WARMUP_MS });
  const soloMeter = cpuMeter({ pid: berth.pid, probes: dbProbe });
  const solo = await publish(agent, target, id, { rate: RATE, durationMs: FANOUT_MS });
  const soloCpu = soloMeter();
  const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => new Subscriber(socketUrl(port, id)).ready));

  /** One recorded phase: publish, wait for every subscriber to have it all (at most DRAIN_MS), figures. */
  const phase = async (label, opts, publishing = () => publish(agent, target, id, opts)) => {
    subs.forEach((s) => s.reset());
    const meter = cpuMeter({ pid: berth.pid, probes: dbProbe });
    const pub = await publishing();
    const drained = now() + DRAIN_MS;
    while (subs.some((s) => s.messages < pub.posts - pub.errors) && now() < drained) await sleep(20);
    return { label, asked: opts.rate, pub, cpu: meter(), ...phaseFigures(subs, pub) };
  };

  // 1. Fan-out at RATE; if the HTTP path reached less, at that rate too.
  await publish(agent, target, id, { rate: RATE, durationMs: WARMUP_MS });
  const fan = await phase(`${int(RATE)}/s asked`, { rate: RATE, durationMs: FANOUT_MS });
  const short = fan.pub.rate < RATE * 0.95;
  const atReached = short ? await phase(`${int(fan.pub.rate)}/s (reached)`, { rate: fan.pub.rate, durationMs: FANOUT_MS }) : null;

  // 2. A stalled subscriber among them, after a baseline of the same size, below saturation.
  const stallRate = short ? fan.pub.rate / 2 : RATE;
  let rss = rssBytes(berth.pid);
  const base = await phase(short ? `${int(stallRate)}/s (half)` : `${STALL_EVENTS} events`, { rate: stallRate, events: STALL_EVENTS });
  const baseGrowth = rssBytes(berth.pid) - rss;
  const stalled = await new Subscriber(socketUrl(port, id)).ready;
  stalled.stall();
  rss = rssBytes(berth.pid);
  const withStalled = await phase(`${STALL_EVENTS} events + stalled`, { rate: stallRate, events: STALL_EVENTS });
  const rssGrowth = rssBytes(berth.pid) - rss;
  const stalledClosed = stalled.closeCode;
  stalled.ws.terminate();

  // 4. The worker's path (PostgreSQL + Redis): stored and published by this process, as a worker does.
  let asWorker = null;
  if (store.db) {
    const { Database, EventLog } = require(path.join(ctx.root, 'dist/libs/persistence/src/index.js'));
    const { RedisEventBus } = require(path.join(ctx.root, 'dist/libs/bus/src/index.js'));
    const { messageEvent } = require(path.join(ctx.root, 'dist/libs/contracts/src/index.js'));
    const db = new Database({ databaseUrl: store.env.DATABASE_URL, dataDir, poolSize: 2 });
    await db.ready;
    const worker = { db, log: new EventLog(db), bus: new RedisEventBus(store.env.REDIS_URL), messageEvent };
    try {
      const count = (n) => Math.round((RATE * n) / 1000);
      await publishAsWorker(worker, id, await storeAsWorker(worker, id, count(WARMUP_MS)), RATE);
      const stored = await storeAsWorker(worker, id, count(FANOUT_MS));
      asWorker = await phase(`worker path, ${int(RATE)}/s`, { rate: RATE }, () => publishAsWorker(worker, id, stored, RATE));
    } finally {
      await worker.bus.close();
      await db.close();
    }
  }

  // 3. Reconnect cycles, every HTTP connection and subscriber closed; unrecorded ones first, so
  // that what the first ones open for good (a database connection) is not counted as a leak.
  agent.destroy();
  await Promise.all(subs.map((s) => s.close()));
  for (let k = 0; k < RECONNECT_WARMUP; k++) await replayCycle(port, replayId, 1 + history);
  await sleep(SETTLE_MS);
  const fdsBefore = openFds(berth.pid);
  const t0 = now();
  for (let k = 0; k < RECONNECTS; k++) await replayCycle(port, replayId, 1 + history);
  const cycleMs = (now() - t0) / RECONNECTS;
  await sleep(SETTLE_MS);
  const fdsAfter = openFds(berth.pid);
  const fdDelta = fdsAfter.size - fdsBefore.size;
  const stopped = await berth.stop();
  if (stopped.code) log(`  ! Berth exited with code ${stopped.code}:\n${berth.output().slice(-2000)}`);

  const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${Math.round(v * 100)}%`);
  const cpuPerPost = (cpu, posts) => (cpu.serverCpu * cpu.seconds) / posts;
  const perFrameUs = ((cpuPerPost(fan.cpu, fan.pub.posts) - cpuPerPost(soloCpu, solo.posts)) / (EVENTS_PER_POST * SUBSCRIBERS)) * 1e6;
  log(
    `  [${mode}] no subscriber, ${int(RATE)} events/s asked: ${int(solo.rate)} reached; gateway CPU ${ms(cpuPerPost(soloCpu, solo.posts) * 1000)} ms per POST, ` +
      `${ms(cpuPerPost(fan.cpu, fan.pub.posts) * 1000)} ms with ${SUBSCRIBERS} subscribers: ` +
      // A difference of two figures: other processes' load can hide a few µs.
      `${perFrameUs > 0 ? `${ms(perFrameUs)} µs per frame sent` : 'the fan-out is within the noise'} (other processes: ${pct(soloCpu.otherCpu)} of a core)`,
  );
  const fanOuts = [fan, ...(short ? [atReached, base] : [])];
  const phases = [...fanOuts, ...(short ? [] : [base]), withStalled, ...(asWorker ? [asWorker] : [])];
  log(`  [${mode}] ${SUBSCRIBERS} subscribers; per subscriber: the spread of their send → recv p99s, and the fewest messages any one got`);
  log(
    table(
      ['phase', 'events/s', 'POSTs', 'failed', 'stored→recv p50', 'p99', 'max', 'send→recv p50', 'p99', 'max', 'sub p99 min', 'median', 'max', 'fewest', 'gw CPU', 'gen CPU', 'db CPU', 'other'],
      phases.map((f) => [
        f.label,
        int(f.pub.rate),
        int(f.pub.posts),
        int(f.pub.errors),
        ms(f.fromStamp.p50),
        ms(f.fromStamp.p99),
        ms(f.fromStamp.max),
        ms(f.fromSend.p50),
        ms(f.fromSend.p99),
        ms(f.fromSend.max),
        ms(f.subP99.min),
        ms(f.subP99.p50),
        ms(f.subP99.max),
        `${int(f.minReceived)}/${int(f.expected)}`,
        pct(f.cpu.serverCpu),
        pct(f.cpu.clientCpu),
        pct(f.cpu.probeCpu.db),
        pct(f.cpu.otherCpu),
      ]),
      '    ',
    ),
  );
  if (fan.pub.firstError) log(`    ! first failed POST: ${fan.pub.firstError}`);
  log(
    `  [${mode}] stalled subscriber over ${STALL_EVENTS} events at ${int(stallRate)}/s: gateway RSS ${signed(rssGrowth)} (${signed(baseGrowth)} over the baseline's ${STALL_EVENTS}); ` +
      `others' send → recv p99 ${ms(withStalled.fromSend.p99)} ms vs ${ms(base.fromSend.p99)} ms without it; stalled socket ${stalledClosed === null ? 'still open' : `closed ${stalledClosed}`}`,
  );
  const changes = fdChanges(fdsBefore, fdsAfter);
  log(
    `  [${mode}] ${RECONNECTS} reconnects (replay of ${history} events each, ${ms(cycleMs)} ms per cycle): gateway fds ${fdsBefore.size} → ${fdsAfter.size}` +
      (changes.length ? ` (${changes.slice(0, 8).join(', ')}${changes.length > 8 ? ', …' : ''})` : ''),
  );

  const complete = (f) => f.minReceived === f.expected && f.pub.errors === 0;
  const noisy = (...fs) => (fs.some((f) => f.cpu.otherCpu > NOISY_OTHER_CPU) ? ' [disturbed]' : '');
  for (const f of fanOuts) {
    ctx.report({
      bench: BENCH,
      storage: mode,
      target: `fan-out to ${SUBSCRIBERS}, ${f.label}: p99 ≤ ${TARGET_P99_MS} ms`,
      measured:
        `p99 ${ms(f.fromStamp.p99)} ms stored → recv (${ms(f.fromSend.p99)} send → recv) at ${int(f.pub.rate)} events/s` +
        `${complete(f) ? '' : `; ${int(f.expected - f.minReceived)} missed`}${noisy(f)}`,
      ok: f.fromStamp.p99 <= TARGET_P99_MS && complete(f) && f.pub.rate >= f.asked * 0.95,
    });
  }
  if (asWorker) {
    ctx.report({
      bench: BENCH,
      storage: mode,
      target: `fan-out to ${SUBSCRIBERS}, worker path at ${int(RATE)} events/s: publish → recv p99 ≤ ${TARGET_P99_MS} ms`,
      measured:
        `p99 ${ms(asWorker.fromSend.p99)} ms (p50 ${ms(asWorker.fromSend.p50)}, max ${ms(asWorker.fromSend.max)}) at ${int(asWorker.pub.rate)} events/s` +
        `${complete(asWorker) ? '' : `; ${int(asWorker.expected - asWorker.minReceived)} missed`}${noisy(asWorker)}`,
      ok: asWorker.fromSend.p99 <= TARGET_P99_MS && complete(asWorker) && asWorker.pub.rate >= RATE * 0.95,
    });
  }
  const stallShare = rssGrowth - Math.max(0, baseGrowth);
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `stalled subscriber, ${STALL_EVENTS} events: RSS < ${TARGET_RSS_BYTES / 2 ** 20} MB, others not delayed`,
    measured: `RSS ${signed(rssGrowth)} (baseline ${signed(baseGrowth)}), p99 ${ms(withStalled.fromSend.p99)} vs ${ms(base.fromSend.p99)} ms${noisy(base, withStalled)}`,
    ok: stallShare < TARGET_RSS_BYTES && withStalled.fromSend.p99 <= base.fromSend.p99 + DELAY_TOLERANCE_MS && complete(withStalled),
  });
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `${RECONNECTS} reconnect cycles leak 0 fds`,
    measured: `${fdDelta >= 0 ? '+' : ''}${fdDelta} fds (${fdsBefore.size} → ${fdsAfter.size})`,
    ok: fdDelta <= 0,
  });
}

async function run(ctx) {
  for (const mode of ctx.options.storage) await measure(ctx, mode);
}

module.exports = { run };
