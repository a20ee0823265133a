'use strict';
/**
 * Idle memory (run by bench/run.js; `node bench/run.js memory`). For each storage mode, Berth as
 * `npm start` runs it (package.json's variables and Node options), waits for /ready and
 * BENCH_MEMORY_SETTLE_MS (default 10000), then prints RSS and PSS of every process of its tree
 * and splits the gateway's RSS into parts:
 *   - JS heap: V8's committed heap (v8.getHeapStatistics().total_physical_size);
 *   - wasm memory: the resident part of the WebAssembly memories (PGlite's PostgreSQL, Prisma's
 *     query compiler), each one mapping of /proc/<pid>/smaps;
 *   - program and libraries: file-backed mappings (the node binary, shared libraries; shared with
 *     other processes running them, which PSS splits);
 *   - native: the rest (malloc'd memory, thread stacks, compiled code).
 * A preload (bench/lib/memory-preload.js, over IPC) reports the heap and the wasm memories' sizes.
 * Target (issue 15): the whole tree ≤ 300 MiB at idle, RSS (PSS reported beside it).
 */
const path = require('node:path');
const fs = require('node:fs');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { tree, pssBytes, killTree } = require('./lib/proctree');
const { berthEnv, berthStart, prepareStorage } = require('./lib/berth');

const BENCH = 'memory';
const HOST = '127.0.0.1';
const TARGET_MIB = 300;
const PRELOAD = path.join(__dirname, 'lib/memory-preload.js');
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** The mappings of `pid`: [{ size, rss, anonymous, file }] (file: the mapped path, '' if none). */
function mappings(pid) {
  const maps = [];
  let cur = null;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'latin1').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { size: parseInt(head[2], 16) - parseInt(head[1], 16), rss: 0, file: head[3].startsWith('/') ? head[3] : '' };
      maps.push(cur);
    } else if (cur && line.startsWith('Rss:')) cur.rss = Number(line.split(/\s+/)[1]) * 1024;
  }
  return maps;
}

/** The gateway's RSS in parts (see the file comment). */
function parts(pid, rssBytes, report) {
  const maps = mappings(pid);
  const file = maps.filter((m) => m.file).reduce((sum, m) => sum + m.rss, 0);
  let wasm = 0;
  const unmatched = [...report.wasmBytes];
  for (const m of maps) {
    const i = unmatched.indexOf(m.size);
    if (m.file || i < 0) continue;
    wasm += m.rss;
    unmatched.splice(i, 1);
  }
  const heap = report.heapPhysicalBytes;
  return { heap, heapUsed: report.heapUsedBytes, wasm, wasmSizes: report.wasmBytes, file, native: rssBytes - heap - wasm - file };
}

async function measure(ctx, mode) {
  const { log } = ctx;
  const store = await prepareStorage(ctx, mode, `berth_bench_memory_${process.pid}`);
  if (!store) {
    ctx.report({ bench: BENCH, storage: mode, target: `idle tree ≤ ${TARGET_MIB} MiB`, measured: 'skipped (storage unreachable)', ok: null });
    return;
  }
  const dataDir = ctx.tmpdir(`berth-bench-memory-${mode}-`);
  const port = await freePort();
  const start = berthStart(ctx.root);
  const env = berthEnv({ OH_SESSION_API_KEYS_0: 'bench-key', LOG_LEVEL: 'warn', BERTH_DATA_DIR: dataDir, OH_CONVERSATIONS_PATH: path.join(dataDir, 'conversations'), ...store.env, ...start.env });
  const main = path.join(ctx.root, 'dist/apps/gateway/src/main.js');
  const handle = spawnNode(`berth[${mode}]`, main, { args: ['--host', HOST, '--port', String(port)], nodeArgs: [...start.nodeArgs, '--require', PRELOAD], env, cwd: ctx.root, ipc: true });
  ctx.defer(`stop berth[${mode}]`, () => killTree(handle, { dir: dataDir, force: true }));
  const readyMs = await waitForHttp(handle, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  const settleMs = Number(process.env.BENCH_MEMORY_SETTLE_MS || 10_000);
  await new Promise((r) => setTimeout(r, settleMs));

  const processes = tree(handle.pid);
  const report = await handle.ask({ cmd: 'memory' }, 'memory');
  let rss = 0;
  let pss = 0;
  log(`  [${mode}] ${store.label}: ready in ${readyMs} ms, measured ${settleMs} ms later; started with ${JSON.stringify(start.env)} node ${start.nodeArgs.join(' ')}`);
  for (const p of processes) {
    const v = pssBytes(p.pid) ?? 0;
    rss += p.rssBytes;
    pss += v;
    log(`    ${'  '.repeat(p.depth)}${p.depth ? p.comm : 'gateway'} (pid ${p.pid}): rss ${mib(p.rssBytes)}, pss ${mib(v)}`);
  }
  const gateway = parts(handle.pid, processes[0].rssBytes, report);
  log(
    `    gateway RSS in parts: JS heap ${mib(gateway.heap)} (${mib(gateway.heapUsed)} used), wasm memory ${mib(gateway.wasm)} resident ` +
      `(of ${gateway.wasmSizes.map(mib).join(' + ') || 'none'}), program and libraries ${mib(gateway.file)}, native (malloc, stacks, code) ${mib(gateway.native)}`,
  );
  log(`  [${mode}] idle tree: ${processes.length} process(es), rss ${mib(rss)}, pss ${mib(pss)}`);
  ctx.report({ bench: BENCH, storage: mode, target: `idle tree ≤ ${TARGET_MIB} MiB RSS`, measured: `rss ${mib(rss)}, pss ${mib(pss)} (${processes.length} process(es))`, ok: rss <= TARGET_MIB * 2 ** 20 });
  await killTree(handle, { dir: dataDir, force: true });
}

async function run(ctx) {
  for (const mode of ctx.options.storage) await measure(ctx, mode);
}

module.exports = { run };
