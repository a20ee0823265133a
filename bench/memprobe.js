'use strict';
/**
 * Idle memory of Berth (embedded default) after start: `node bench/memprobe.js [KEY=VALUE…]`.
 * Starts dist/apps/gateway/src/main.js with the given extra environment, waits for /ready and
 * BENCH_SETTLE_MS (default 5000), prints RSS and PSS of the root and of each child process, then
 * stops the tree. For comparing memory settings one at a time (not part of bench/run.js).
 * BENCH_PROBE_EVENTS=N also fills a conversation with N user messages and 100 more conversations,
 * then times GET …/events/search?limit=100 and GET /api/conversations/search?limit=100
 * (BENCH_PROBE_N sequential requests each, default 200). BENCH_DATA_DIR reuses a data directory;
 * BENCH_SMAPS=1 lists the root's largest mappings.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { tree, pssBytes, killTree } = require('./lib/proctree');
const { berthEnv } = require('./lib/berth');
const { runSequential, runPool, request, keepAliveAgent } = require('./lib/load');

const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;

async function main() {
  const extra = Object.fromEntries(process.argv.slice(2).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  const root = path.join(__dirname, '..');
  const keep = process.env.BENCH_DATA_DIR;
  const dataDir = keep || fs.mkdtempSync(path.join(os.tmpdir(), "berth-memprobe-"));
  const port = await freePort();
  const env = berthEnv({ OH_SESSION_API_KEYS_0: 'memprobe-key', LOG_LEVEL: 'warn', BERTH_DATA_DIR: dataDir, OH_CONVERSATIONS_PATH: path.join(dataDir, 'conversations'), ...extra });
  const nodeArgs = (extra.NODE_ARGS || '').split(' ').filter(Boolean);
  const handle = spawnNode('berth', path.join(root, 'dist/apps/gateway/src/main.js'), { args: ['--host', '127.0.0.1', '--port', String(port)], nodeArgs, env, cwd: root });
  try {
    const t0 = Date.now();
    await waitForHttp(handle, `http://127.0.0.1:${port}/ready`, { timeoutMs: 120_000 });
    const readyMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, Number(process.env.BENCH_SETTLE_MS || 5000)));
    const t = tree(handle.pid);
    let rss = 0;
    let pss = 0;
    if (process.env.BENCH_SHOW_OUTPUT) console.log(handle.output().split("\n").filter((l) => l.includes("HEAPREPORT")).join("\n"));
    const lines = t.map((p) => {
      const v = pssBytes(p.pid) ?? 0;
      rss += p.rssBytes;
      pss += v;
      return `  ${'  '.repeat(p.depth)}${p.pid} ${p.comm}: rss ${mib(p.rssBytes)} pss ${mib(v)}`;
    });
    console.log(`${JSON.stringify(extra)} ready in ${readyMs} ms: ${t.length} processes, rss ${mib(rss)}, pss ${mib(pss)}`);
    console.log(lines.join("\n"));
    if (process.env.BENCH_SMAPS) console.log(smapsTop(handle.pid));
    if (process.env.BENCH_PROBE_EVENTS) await latencies({ host: '127.0.0.1', port, pid: handle.pid }, Number(process.env.BENCH_PROBE_EVENTS));
  } finally {
    await killTree(handle, { dir: dataDir, force: true });
    if (!keep) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/** The largest mappings of `pid` by RSS (for finding where memory is). */
function smapsTop(pid, n = 12) {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'latin1');
  const maps = [];
  let cur = null;
  for (const line of text.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      const [range, , , , , name = ''] = line.split(/\s+/);
      const [a, b] = range.split('-').map((h) => parseInt(h, 16));
      cur = { name, size: b - a, rss: 0 };
      maps.push(cur);
    } else if (cur && line.startsWith('Rss:')) cur.rss = Number(line.split(/\s+/)[1]) * 1024;
  }
  maps.sort((x, y) => y.rss - x.rss);
  return maps.slice(0, n).map((m) => `    rss ${mib(m.rss)} of ${mib(m.size)} ${m.name}`).join('\n');
}

const AUTH = { 'X-Session-API-Key': 'memprobe-key' };

async function latencies(target, events) {
  const agent = keepAliveAgent(8);
  const post = async (p, body) => {
    const res = await request(agent, target, { method: 'POST', path: p, headers: AUTH, body, readBody: true });
    if (res.status !== 200 && res.status !== 201) throw new Error(`POST ${p} → ${res.status}: ${res.body}`);
    return JSON.parse(res.body);
  };
  const conv = { agent: { kind: 'Agent', llm: { model: 'openai/probe', api_key: 'sk-probe', base_url: 'http://127.0.0.1:9/v1' }, tools: [] }, workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' } };
  const { id } = await post('/api/conversations', conv);
  let i = 0;
  await runPool(events, 8, async () => (await post(`/api/conversations/${id}/events`, { role: 'user', content: [{ type: 'text', text: `message ${i++} with some words to search for` }], run: false }), true));
  await runPool(100, 8, async () => (await post('/api/conversations', conv), true));
  agent.destroy();
  const n = Number(process.env.BENCH_PROBE_N || 200);
  for (const [label, p] of [['events search first page', `/api/conversations/${id}/events/search?limit=100`], ['conversation list first page', '/api/conversations/search?limit=100']]) {
    const r = await runSequential(target, { path: p, headers: AUTH, n, warmup: 20 });
    console.log(`  ${label}: median ${r.latency.p50.toFixed(2)} ms, p95 ${r.latency.p95.toFixed(2)} ms (${r.errors} errors)`);
  }
}
