'use strict';
/**
 * A small closed-loop HTTP load generator on node:http: `concurrency` loops, each issuing its next
 * request as soon as the previous response has been read, over one keep-alive Agent
 * (maxSockets = concurrency). Latency is measured per request with process.hrtime.bigint(), from
 * just before http.request() to the end of the response body.
 *
 * Being closed-loop, it reports service latency at the throughput the server sustains; it does not
 * model a fixed arrival rate (no coordinated-omission correction).
 */
const http = require('node:http');
const { cpuMeter } = require('./proc');
const { summarize } = require('./stats');

/** One request; resolves { status, ms, body? } (body only when `readBody`), rejects on network errors. */
function request(agent, target, { method = 'GET', path, headers = {}, body, readBody = false, timeoutMs = 30_000 }) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { ...headers };
    if (payload !== undefined) {
      h['content-type'] = h['content-type'] || 'application/json';
      h['content-length'] = Buffer.byteLength(payload);
    }
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: target.host, port: target.port, method, path, headers: h, agent, timeout: timeoutMs }, (res) => {
      const chunks = readBody ? [] : null;
      res.on('data', (c) => chunks && chunks.push(c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        resolve({ status: res.statusCode, ms, body: chunks ? Buffer.concat(chunks).toString('utf8') : undefined });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function keepAliveAgent(maxSockets) {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

/** Growable Float64Array of samples. */
class Samples {
  constructor(capacity = 65_536) {
    this.data = new Float64Array(capacity);
    this.length = 0;
  }
  push(v) {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }
  values() {
    return this.data.subarray(0, this.length);
  }
}

/**
 * Closed-loop load for `durationMs` (after `warmupMs` of the same load, discarded).
 * target: { host, port, pid?, cpuProbes? } — pid enables server CPU accounting through /proc;
 * cpuProbes is { name: () => cpuSecondsSoFar | null } for other processes (e.g. the database).
 * Returns { label, requests, errors, statuses, seconds, rps, latency: {n,min,mean,p50,p95,p99,max},
 *           serverCpu, clientCpu, probeCpu: { name }, otherCpu (in cores; see proc.cpuMeter) }.
 */
async function runLoad(target, { label = '', method = 'GET', path = '/', headers = {}, body, expectStatus = 200, concurrency = 32, durationMs = 5000, warmupMs = 1000 } = {}) {
  const agent = keepAliveAgent(concurrency);
  const spec = { method, path, headers, body };
  const phase = async (ms, record) => {
    const samples = new Samples();
    const statuses = {};
    let errors = 0;
    let firstError = null;
    const deadline = Date.now() + ms;
    const loop = async () => {
      while (Date.now() < deadline) {
        try {
          const res = await request(agent, target, spec);
          statuses[res.status] = (statuses[res.status] || 0) + 1;
          if (res.status === expectStatus) {
            if (record) samples.push(res.ms);
          } else errors++;
        } catch (err) {
          errors++;
          if (!firstError) firstError = err.message;
          statuses.network = (statuses.network || 0) + 1;
          await new Promise((r) => setTimeout(r, 10)); // don't spin on a dead server
        }
      }
    };
    const stop = cpuMeter({ pid: target.pid, probes: target.cpuProbes });
    await Promise.all(Array.from({ length: concurrency }, loop));
    return { samples, statuses, errors, firstError, ...stop() };
  };
  try {
    if (warmupMs > 0) await phase(warmupMs, false);
    const r = await phase(durationMs, true);
    const requests = r.samples.length + r.errors;
    return {
      label,
      requests,
      errors: r.errors,
      firstError: r.firstError,
      statuses: r.statuses,
      seconds: r.seconds,
      rps: r.samples.length / r.seconds,
      latency: summarize(r.samples.values()),
      serverCpu: r.serverCpu,
      clientCpu: r.clientCpu,
      probeCpu: r.probeCpu,
      otherCpu: r.otherCpu,
    };
  } finally {
    agent.destroy();
  }
}

/**
 * `n` requests one after another (after `warmup` unrecorded ones) on one keep-alive connection;
 * `check(body)` may return a problem string to count a 2xx answer as an error. Same result shape
 * as runLoad, without rps.
 */
async function runSequential(target, { label = '', method = 'GET', path = '/', headers = {}, body, expectStatus = 200, n = 200, warmup = 20, check } = {}) {
  const agent = keepAliveAgent(1);
  const samples = new Samples(n);
  let errors = 0;
  let firstError = null;
  let stop = null;
  let cpu = {};
  try {
    for (let i = 0; i < warmup + n; i++) {
      if (i === warmup) stop = cpuMeter({ pid: target.pid, probes: target.cpuProbes });
      try {
        const res = await request(agent, target, { method, path, headers, body, readBody: Boolean(check) });
        let ok = res.status === expectStatus;
        if (ok && check) {
          const problem = check(res.body);
          if (problem) {
            ok = false;
            if (!firstError) firstError = problem;
          }
        } else if (!ok && !firstError) firstError = `status ${res.status}`;
        if (i >= warmup) {
          if (ok) samples.push(res.ms);
          else errors++;
        }
      } catch (err) {
        if (i >= warmup) errors++;
        if (!firstError) firstError = err.message;
      }
    }
    if (stop) cpu = stop();
  } finally {
    agent.destroy();
  }
  return { label, requests: n, errors, firstError, latency: summarize(samples.values()), ...cpu };
}

/**
 * Runs `fn(i)` for i in 0..count-1 with at most `concurrency` in flight; returns
 * { seconds, rate, ok, failed, firstError }. `fn` resolves truthy for success.
 */
async function runPool(count, concurrency, fn) {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError = null;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        const res = await fn(i);
        if (res === true) ok++;
        else {
          failed++;
          if (!firstError) firstError = typeof res === 'string' ? res : 'failed';
        }
      } catch (err) {
        failed++;
        if (!firstError) firstError = err.message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, rate: count / seconds, ok, failed, firstError };
}

module.exports = { request, keepAliveAgent, runLoad, runSequential, runPool, Samples };
