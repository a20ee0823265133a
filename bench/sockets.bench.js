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
 *   just before it is stored) to its arrival, for both events of a POST — store, publish and fan-out
 *   alone. The timestamp has millisecond resolution (truncated), so this figure reads up to 1 ms
 *   high; same machine, same clock.
 * The p99 target (≤ 5 ms) is judged on "stored → recv", the publish → receive path; "send → recv"
 * is printed beside it.
 *
 * 1. Fan-out: SUBSCRIBERS subscribers, RATE events/s for FANOUT_MS (after WARMUP_MS unrecorded);
 *    if the HTTP path reaches less than RATE, again at the rate it reached (less queueing of POSTs).
 *    Per subscriber: the spread of their p99s and maxima, and the fewest events any one received.
 * 2. Stalled subscriber (at the lower of RATE and the rate reached): a baseline of STALL_EVENTS events, then one more subscriber that stops
 *    reading (its TCP socket paused) and another STALL_EVENTS events: the gateway's RSS growth over
 *    them (target < 5 MB) and the other subscribers' p99 against the baseline's.
 * 3. RECONNECTS cycles on a second conversation (open with resend_mode=all, take the whole replay,
 *    close), one after another: open file descriptors of the gateway before and after (/proc/<pid>/fd,
 *    each after SETTLE_MS, every HTTP connection closed), target: no more after.
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
const FANOUT_MS = 4000;
const WARMUP_MS = 1000;
const STALL_EVENTS = 200;
const RECONNECTS = 100;
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

const openFds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

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
  const id = await conversation(agent, target);
  const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => new Subscriber(socketUrl(port, id)).ready));
  const dbProbe = store.db ? { db: () => cpuSecondsByName('postgres') } : {};

  /** One recorded phase: publish, wait for every subscriber to have it all (at most DRAIN_MS), figures. */
  const phase = async (opts) => {
    subs.forEach((s) => s.reset());
    const meter = cpuMeter({ pid: berth.pid, probes: dbProbe });
    const pub = await publish(agent, target, id, opts);
    const drained = now() + DRAIN_MS;
    while (subs.some((s) => s.messages < pub.posts - pub.errors) && now() < drained) await sleep(20);
    return { pub, cpu: meter(), ...phaseFigures(subs, pub) };
  };

  // 1. Fan-out at RATE, and at the rate reached if the HTTP path could not publish RATE.
  await publish(agent, target, id, { rate: RATE, durationMs: WARMUP_MS });
  const fan = await phase({ rate: RATE, durationMs: FANOUT_MS });
  const reached = fan.pub.rate < RATE * 0.95 ? await phase({ rate: fan.pub.rate, durationMs: FANOUT_MS }) : null;

  // 2. A stalled subscriber among them: a baseline of the same size first.
  const stallRate = Math.min(RATE, fan.pub.rate);
  const base = await phase({ rate: stallRate, events: STALL_EVENTS });
  const stalled = await new Subscriber(socketUrl(port, id)).ready;
  stalled.stall();
  const rssBefore = rssBytes(berth.pid);
  const withStalled = await phase({ rate: stallRate, events: STALL_EVENTS });
  const rssGrowth = rssBytes(berth.pid) - rssBefore;
  const stalledClosed = stalled.closeCode;
  stalled.ws.terminate();

  // 3. Reconnect cycles on a conversation of its own (a short history to replay).
  const replayId = await conversation(agent, target);
  for (let k = 0; k < REPLAY_POSTS; k++) {
    await request(agent, target, { method: 'POST', path: `/api/conversations/${replayId}/events`, headers: AUTH, body: { role: 'user', content: [{ type: 'text', text: `replay ${k}` }], run: false } });
  }
  const counted = await request(agent, target, { path: `/api/conversations/${replayId}/events/count`, headers: AUTH, readBody: true });
  const history = Number(counted.body);
  agent.destroy();
  await Promise.all(subs.map((s) => s.close()));
  await sleep(SETTLE_MS);
  const fdsBefore = openFds(berth.pid);
  const t0 = now();
  for (let k = 0; k < RECONNECTS; k++) await replayCycle(port, replayId, 1 + history);
  const cycleMs = (now() - t0) / RECONNECTS;
  await sleep(SETTLE_MS);
  const fdsAfter = openFds(berth.pid);
  const stopped = await berth.stop();
  if (stopped.code) log(`  ! Berth exited with code ${stopped.code}:\n${berth.output().slice(-2000)}`);

  const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${Math.round(v * 100)}%`);
  const describe = (label, f) => {
    const p = f.pub;
    log(`  [${mode}] ${label}: ${int(p.rate)} events/s reached (${int(p.posts)} POSTs in ${p.seconds.toFixed(1)} s, ${p.errors} failed${p.firstError ? `, first: ${p.firstError}` : ''})`);
    log(`    CPU: gateway ${pct(f.cpu.serverCpu)}, this process ${pct(f.cpu.clientCpu)}${store.db ? `, postgres ${pct(f.cpu.probeCpu.db)}` : ''}, other ${pct(f.cpu.otherCpu)} (of one core)`);
    log(
      `    per subscriber (send → recv): p99 min ${ms(f.subP99.min)} / median ${ms(f.subP99.p50)} / max ${ms(f.subP99.max)} ms, ` +
        `max min ${ms(f.subMax.min)} / median ${ms(f.subMax.p50)} / max ${ms(f.subMax.max)} ms; messages received: fewest ${int(f.minReceived)} of ${int(f.expected)}`,
    );
  };
  describe(`fan-out to ${SUBSCRIBERS} subscribers, ${int(RATE)} events/s asked for ${FANOUT_MS / 1000} s`, fan);
  if (reached) describe(`again at the rate reached, ${int(fan.pub.rate)} events/s`, reached);
  const latencyRow = (label, l) => [label, int(l.n), ms(l.p50), ms(l.p95), ms(l.p99), ms(l.max)];
  const rows = [
    latencyRow(`${int(RATE)}/s asked: stored → recv`, fan.fromStamp),
    latencyRow(`${int(RATE)}/s asked: send → recv`, fan.fromSend),
    ...(reached ? [latencyRow(`${int(fan.pub.rate)}/s asked: stored → recv`, reached.fromStamp), latencyRow(`${int(fan.pub.rate)}/s asked: send → recv`, reached.fromSend)] : []),
    latencyRow(`${STALL_EVENTS} events: send → recv`, base.fromSend),
    latencyRow(`${STALL_EVENTS} events + stalled: send → recv`, withStalled.fromSend),
    latencyRow(`${STALL_EVENTS} events + stalled: stored → recv`, withStalled.fromStamp),
  ];
  log(table(['latency (ms), all subscribers', 'samples', 'p50', 'p95', 'p99', 'max'], rows, '    '));
  log(
    `  [${mode}] stalled subscriber over ${STALL_EVENTS} events at ${int(stallRate)}/s: gateway RSS ${rssGrowth >= 0 ? '+' : ''}${mib(rssGrowth)}; ` +
      `others' p99 ${ms(withStalled.fromSend.p99)} ms vs ${ms(base.fromSend.p99)} ms without it; ` +
      `fewest received ${int(withStalled.minReceived)} of ${int(withStalled.expected)}; stalled socket ${stalledClosed === null ? 'still open' : `closed ${stalledClosed}`}`,
  );
  log(`  [${mode}] ${RECONNECTS} reconnects (replay of ${history} events each, ${ms(cycleMs)} ms per cycle): gateway fds ${fdsBefore} → ${fdsAfter}`);

  const complete = (f) => f.minReceived === f.expected && f.pub.errors === 0;
  const noisy = (...fs) => (fs.some((f) => f.cpu.otherCpu > NOISY_OTHER_CPU) ? ' [disturbed]' : '');
  const fanMeasured = (f) => `p99 ${ms(f.fromStamp.p99)} ms stored → recv, ${ms(f.fromSend.p99)} ms send → recv${complete(f) ? '' : `; ${int(f.expected - f.minReceived)} missed`}${noisy(f)}`;
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `fan-out to ${SUBSCRIBERS} at ${int(RATE)} events/s: p99 ≤ ${TARGET_P99_MS} ms`,
    measured: `${fanMeasured(fan)}${reached ? `; reached ${int(fan.pub.rate)}/s` : ''}`,
    ok: fan.fromStamp.p99 <= TARGET_P99_MS && complete(fan) && !reached,
  });
  if (reached) {
    ctx.report({
      bench: BENCH,
      storage: mode,
      target: `fan-out to ${SUBSCRIBERS} at the rate reached: p99 ≤ ${TARGET_P99_MS} ms`,
      measured: `${fanMeasured(reached)} at ${int(reached.pub.rate)} events/s`,
      ok: reached.fromStamp.p99 <= TARGET_P99_MS && complete(reached),
    });
  }
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `stalled subscriber, ${STALL_EVENTS} events: RSS < ${TARGET_RSS_BYTES / 2 ** 20} MB, others not delayed`,
    measured: `RSS ${rssGrowth >= 0 ? '+' : ''}${mib(rssGrowth)}, p99 ${ms(withStalled.fromSend.p99)} vs ${ms(base.fromSend.p99)} ms${noisy(base, withStalled)}`,
    ok: rssGrowth < TARGET_RSS_BYTES && withStalled.fromSend.p99 <= base.fromSend.p99 + DELAY_TOLERANCE_MS && complete(withStalled),
  });
  ctx.report({
    bench: BENCH,
    storage: mode,
    target: `${RECONNECTS} reconnect cycles leak 0 fds`,
    measured: `${fdsAfter - fdsBefore >= 0 ? '+' : ''}${fdsAfter - fdsBefore} fds (${fdsBefore} → ${fdsAfter})`,
    ok: fdsAfter <= fdsBefore,
  });
}

async function run(ctx) {
  for (const mode of ctx.options.storage) await measure(ctx, mode);
}

module.exports = { run };
