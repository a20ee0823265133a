'use strict';
/**
 * Child processes for benchmarks: free ports, spawning Node scripts as servers (so the load generator
 * never shares their event loop), readiness polling, CPU accounting and guaranteed clean-up.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

/** Every child still running; killed (SIGKILL) synchronously if the bench process exits first. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** An unused TCP port on 127.0.0.1 (bound and released; good enough for a local bench). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const PROFILER_PRELOAD = path.join(__dirname, 'cpu-profiler-preload.js');

/**
 * Starts `node [nodeArgs] script [args]` and returns a handle:
 * { name, pid, child, output() (last ~16 KB of stdout+stderr), exited (Promise<{code, signal}>),
 *   stop(timeoutMs) (SIGTERM, then SIGKILL), profileStart(), profileStop(file) }.
 * With `profile: true` the child is preloaded with an inspector-based CPU profiler driven over IPC
 * (Node's own --cpu-prof would lose the profile: Nest re-raises SIGTERM, which skips exit handlers).
 * `ipc: true` opens the IPC channel for a preload of the caller's (nodeArgs `--require …`), asked
 * with ask(msg, reply).
 */
function spawnNode(name, script, { args = [], nodeArgs = [], env = process.env, cwd = process.cwd(), profile = false, ipc: withIpc = false } = {}) {
  const execArgs = [...nodeArgs, ...(profile ? ['--require', PROFILER_PRELOAD] : []), script, ...args];
  const channel = profile || withIpc;
  const child = spawn(process.execPath, execArgs, {
    cwd,
    env,
    stdio: channel ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  const keep = (chunk) => {
    out += chunk.toString();
    if (out.length > 32_768) out = out.slice(-16_384);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      keep(`spawn error: ${err.message}\n`);
      children.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
  });
  let alive = true;
  exited.then(() => (alive = false));

  const ipc = (msg, reply) =>
    new Promise((resolve, reject) => {
      if (!channel || !child.connected) return reject(new Error(`${name}: not started with profile or ipc: true`));
      const onMessage = (m) => {
        if (m && m.reply === reply) {
          child.off('message', onMessage);
          if (m.error) reject(new Error(`${name}: ${m.error}`));
          else resolve(m);
        }
      };
      child.on('message', onMessage);
      child.send(msg);
    });

  return {
    name,
    pid: child.pid,
    child,
    exited,
    get alive() {
      return alive;
    },
    output: () => out,
    async stop(timeoutMs = 5000) {
      if (!alive) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => alive && child.kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
    ask: ipc,
    profileStart: () => ipc({ cmd: 'profile-start' }, 'profile-started'),
    profileStop: (file) => ipc({ cmd: 'profile-stop', file }, 'profile-stopped'),
  };
}

function getStatus(url, headers = {}, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = http.get(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

/** Polls `url` until it answers `status` (default 200); fails if the child dies or `timeoutMs` passes. */
async function waitForHttp(handle, url, { status = 200, timeoutMs = 60_000, intervalMs = 100, headers } = {}) {
  const started = Date.now();
  let last = 0;
  while (Date.now() - started < timeoutMs) {
    if (!handle.alive) {
      const { code, signal } = await handle.exited;
      throw new Error(`${handle.name} exited (code ${code}, signal ${signal}) before ${url} was ready:\n${handle.output()}`);
    }
    last = await getStatus(url, headers);
    if (last === status) return Date.now() - started;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${handle.name}: ${url} not ${status} after ${timeoutMs} ms (last status ${last}):\n${handle.output()}`);
}

const CLK_TCK = 100; // USER_HZ on Linux (getconf CLK_TCK); /proc reports utime/stime in these ticks

/** CPU seconds (user + system, all threads) used so far by process `pid`; null where /proc is unavailable. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/**
 * CPU seconds used so far by every process whose command name (/proc/<pid>/comm) is `comm`, e.g.
 * 'postgres' (all its backends); null where /proc is unavailable. Processes that exit between two
 * readings drop out, so use it over short windows on an otherwise quiet machine.
 */
function cpuSecondsByName(comm) {
  let entries;
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return null;
  }
  let total = 0;
  let found = false;
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim() !== comm) continue;
    } catch {
      continue;
    }
    const s = cpuSeconds(Number(e));
    if (s !== null) {
      total += s;
      found = true;
    }
  }
  return found ? total : null;
}

/**
 * Machine-wide CPU seconds so far from /proc/stat: { busy, total } summed over all cores (busy
 * includes steal: time the hypervisor gave to someone else); null where /proc is unavailable.
 */
function machineCpuSeconds() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    return { busy: (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK, total: (user + nice + system + idle + (iowait || 0) + irq + softirq + (steal || 0)) / CLK_TCK };
  } catch {
    return null;
  }
}

/**
 * Starts measuring CPU over a window: returns stop() → { serverCpu, clientCpu, probeCpu, otherCpu },
 * each in cores (1 = one core busy for the whole window). serverCpu is process `pid`, clientCpu this
 * process, probeCpu each of `probes` ({ name: () => cpuSeconds | null }), otherCpu whatever else
 * kept the machine busy (other processes, steal) — a noise indicator.
 */
function cpuMeter({ pid, probes = {} } = {}) {
  const entries = Object.entries(probes);
  const t0 = process.hrtime.bigint();
  const self0 = process.cpuUsage();
  const srv0 = pid ? cpuSeconds(pid) : null;
  const probe0 = entries.map(([, fn]) => fn());
  const mach0 = machineCpuSeconds();
  return function stop() {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const self = process.cpuUsage(self0);
    const clientCpu = (self.user + self.system) / 1e6 / seconds;
    const srv1 = pid ? cpuSeconds(pid) : null;
    const serverCpu = srv0 !== null && srv1 !== null ? (srv1 - srv0) / seconds : null;
    const probeCpu = {};
    let accounted = clientCpu + (serverCpu || 0);
    entries.forEach(([name, fn], i) => {
      const v = fn();
      probeCpu[name] = v !== null && probe0[i] !== null ? (v - probe0[i]) / seconds : null;
      accounted += probeCpu[name] || 0;
    });
    const mach1 = machineCpuSeconds();
    const otherCpu = mach0 && mach1 ? Math.max(0, (mach1.busy - mach0.busy) / seconds - accounted) : null;
    return { seconds, serverCpu, clientCpu, probeCpu, otherCpu };
  };
}

/** Resident set size of `pid` in bytes; null where /proc is unavailable. */
function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

module.exports = { freePort, spawnNode, waitForHttp, getStatus, cpuSeconds, cpuSecondsByName, machineCpuSeconds, cpuMeter, rssBytes, children };
