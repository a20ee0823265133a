'use strict';
/**
 * Process trees through /proc (Linux): a server child and everything it started (sandbox executors,
 * their shells), their memory and CPU, and killing the whole tree — including orphans whose parent
 * already died, found by their working directory under a folder the bench owns.
 *
 * Every function degrades to empty results where /proc is unavailable.
 */
const fs = require('node:fs');
const path = require('node:path');

const PAGE_SIZE = 4096; // bytes per page for the rss field of /proc/<pid>/stat (x86-64/arm64 default)
const CLK_TCK = 100; // USER_HZ

/**
 * One /proc/<pid>/stat, parsed: { pid, comm, state, ppid, pgid, cpuSeconds, reapedCpuSeconds,
 * startTicks, rssBytes }; null if gone. reapedCpuSeconds is the CPU of children it has waited for
 * (short-lived commands), which cpuSeconds does not include.
 */
function readStat(pid) {
  let stat;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  const f = stat.slice(close + 2).split(' ');
  // f[0] = field 3 (state); field n is f[n - 3]
  return {
    pid: Number(pid),
    comm: stat.slice(open + 1, close),
    state: f[0],
    ppid: Number(f[1]),
    pgid: Number(f[2]),
    cpuSeconds: (Number(f[11]) + Number(f[12])) / CLK_TCK,
    reapedCpuSeconds: (Number(f[13]) + Number(f[14])) / CLK_TCK,
    startTicks: Number(f[19]),
    rssBytes: Number(f[21]) * PAGE_SIZE,
  };
}

/** Every process on the machine: Map pid → stat (see readStat). */
function processTable() {
  const table = new Map();
  let entries;
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return table;
  }
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const s = readStat(e);
    if (s) table.set(s.pid, s);
  }
  return table;
}

/**
 * The tree under `rootPid` (root included) from a process table: [{ ...stat, depth }], depth 0 = root,
 * 1 = its children, … Zombies are kept (rss 0) so they can be counted.
 */
function tree(rootPid, table = processTable()) {
  const root = table.get(rootPid);
  if (!root) return [];
  const children = new Map();
  for (const p of table.values()) {
    if (!children.has(p.ppid)) children.set(p.ppid, []);
    children.get(p.ppid).push(p);
  }
  const out = [{ ...root, depth: 0 }];
  for (let i = 0; i < out.length; i++) {
    for (const c of children.get(out[i].pid) || []) out.push({ ...c, depth: out[i].depth + 1 });
  }
  return out;
}

/**
 * Memory of a server's tree: { processes, rootRss, childCount, childRss, deeperCount, deeperRss,
 * totalRss, cpuSeconds: { root, children, deeper, reaped } } — children = direct children of the root (for
 * Berth: the sandbox executors), deeper = their descendants (shells, commands). RSS double-counts
 * shared pages (the node binary, libraries); see pssBytes for a fair total. cpuSeconds.reaped is the
 * CPU of processes of the tree that have exited and been waited for (mkfifo, subshells, …).
 */
function treeMemory(rootPid, table) {
  const t = tree(rootPid, table);
  const m = { processes: t.length, rootRss: 0, childCount: 0, childRss: 0, deeperCount: 0, deeperRss: 0, totalRss: 0, cpuSeconds: { root: 0, children: 0, deeper: 0, reaped: 0 } };
  for (const p of t) {
    m.totalRss += p.rssBytes;
    m.cpuSeconds.reaped += p.reapedCpuSeconds; // exited children (e.g. a shell's commands) of the live tree
    if (p.depth === 0) {
      m.rootRss = p.rssBytes;
      m.cpuSeconds.root = p.cpuSeconds;
    } else if (p.depth === 1) {
      m.childCount++;
      m.childRss += p.rssBytes;
      m.cpuSeconds.children += p.cpuSeconds;
    } else {
      m.deeperCount++;
      m.deeperRss += p.rssBytes;
      m.cpuSeconds.deeper += p.cpuSeconds;
    }
  }
  return m;
}

/** Proportional set size (shared pages split between sharers) of `pid` in bytes, from smaps_rollup; null if unavailable. */
function pssBytes(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** PSS of a server's tree, split like treeMemory: { root, children, deeper, total } in bytes (null where unreadable). */
function treePss(rootPid, table) {
  const t = tree(rootPid, table);
  if (!t.length) return null;
  const out = { root: 0, children: 0, deeper: 0, total: 0 };
  for (const p of t) {
    const v = pssBytes(p.pid);
    if (v === null) continue;
    out.total += v;
    if (p.depth === 0) out.root += v;
    else if (p.depth === 1) out.children += v;
    else out.deeper += v;
  }
  return out;
}

function cwdOf(pid) {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/**
 * Processes of this user whose working directory is `dir` or under it (e.g. executors and shells of
 * sandboxes in a bench data directory, even once their parent is gone): [{ pid, startTicks }].
 */
function processesUnder(dir, table = processTable()) {
  const base = path.resolve(dir);
  const out = [];
  for (const p of table.values()) {
    if (p.pid === process.pid) continue;
    const cwd = cwdOf(p.pid);
    if (cwd && (cwd === base || cwd.startsWith(base + '/'))) out.push({ pid: p.pid, startTicks: p.startTicks });
  }
  return out;
}

/** Sends `signal` to each { pid, startTicks } still alive and not reused (same start time); returns how many were signalled. */
function signalAll(procs, signal) {
  let n = 0;
  for (const p of procs) {
    const now = readStat(p.pid);
    if (!now || now.startTicks !== p.startTicks || now.state === 'Z') continue;
    try {
      process.kill(p.pid, signal);
      n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

function aliveCount(procs) {
  let n = 0;
  for (const p of procs) {
    const now = readStat(p.pid);
    if (now && now.startTicks === p.startTicks && now.state !== 'Z') n++;
  }
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Ends a server child and everything it started. `handle` is a proc.spawnNode handle; `dir` (optional)
 * a folder whose processes are swept as well (orphans). Graceful first (SIGTERM to the root, which
 * should stop its own children) unless `force`; then SIGKILL for whatever is left.
 * Resolves { graceful: bool, leftover: n (descendants still alive 2 s after the root exited),
 * killed: n (SIGKILLed), stillAlive: n, seconds }.
 */
async function killTree(handle, { dir, graceMs = 20_000, force = false } = {}) {
  const t0 = Date.now();
  const snapshot = () => {
    const table = processTable();
    const seen = new Map();
    for (const p of tree(handle.pid, table)) if (p.pid !== handle.pid) seen.set(p.pid, { pid: p.pid, startTicks: p.startTicks });
    if (dir) for (const p of processesUnder(dir, table)) seen.set(p.pid, p);
    return [...seen.values()];
  };
  const before = handle.alive ? snapshot() : dir ? processesUnder(dir) : [];
  let graceful = false;
  if (handle.alive && !force) {
    const r = await handle.stop(graceMs);
    graceful = r.signal !== 'SIGKILL';
  } else if (handle.alive) {
    signalAll(before, 'SIGKILL');
    handle.child.kill('SIGKILL');
    await handle.exited;
  }
  // Wait a little for children the root told to stop, then kill the rest (and any orphan under dir).
  for (let i = 0; i < 20 && aliveCount(before) > 0; i++) await sleep(100);
  const leftover = aliveCount(before);
  const rest = [...before, ...(dir ? processesUnder(dir) : [])];
  const killed = signalAll(rest, 'SIGKILL');
  for (let i = 0; i < 50 && aliveCount(rest) > 0; i++) await sleep(100);
  return { graceful, leftover: force ? 0 : leftover, killed, stillAlive: aliveCount(rest), seconds: (Date.now() - t0) / 1000 };
}

module.exports = { readStat, processTable, tree, treeMemory, pssBytes, treePss, processesUnder, signalAll, killTree };
