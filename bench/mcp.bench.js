'use strict';
/**
 * MCP benchmark (run by bench/run.js): figures are printed, never asserted.
 *
 * Berth as a child process (dist/apps/gateway/src/main.js, role all, embedded storage, sandboxes
 * isolated by bubblewrap, cold: no warm pool) against the scripted LLM stub of libs/testing in this
 * process. BENCH_MCP_N conversations one after another (default 20, after 3 warm-up) of each kind:
 *   without MCP: `POST /api/conversations` with a first message, agent with the terminal only;
 *   with MCP: the same plus the stdio fixture (libs/testing/fixtures) as its one mcp_config server.
 * The POST answers once the agent is ready (its sandbox started and, with MCP, the server started in
 * it and its tools listed), so the difference of the two is what an MCP server adds to a first
 * message. Each MCP run's LLM calls the fixture's `echo` once: the MCP call's time is from its
 * ActionEvent to its ObservationEvent (the events' timestamps: worker → executor → server and back,
 * plus the event writes). Target: an MCP start under 300 ms at p50 (node's own start is most of it).
 */
const path = require('node:path');
const { request, keepAliveAgent } = require('./lib/load');
const { freePort, spawnNode, waitForHttp } = require('./lib/proc');
const { ms, summarize } = require('./lib/stats');
const { berthEnv } = require('./lib/berth');

const BENCH = 'mcp';
const HOST = '127.0.0.1';
const API_KEY = 'bench-key';
const AUTH = { 'X-Session-API-Key': API_KEY };
const WARM_UP = 3;
const TARGET_START_P50_MS = 300;

/** Epoch ms of an event's naive local timestamp (microseconds dropped). */
const eventTime = (timestamp) => new Date(timestamp.slice(0, 23)).getTime();

async function run(ctx) {
  const { log } = ctx;
  const count = Number(process.env.BENCH_MCP_N || 20);
  const { LlmStub, mcpStdioServer } = require(path.join(ctx.root, 'dist/libs/testing/src/index.js'));
  const llm = new LlmStub();
  await llm.start();
  ctx.defer('stop the LLM stub', () => llm.stop());
  llm.fallbackScript((req) => {
    if (req.body.messages.at(-1)?.role === 'tool') return { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] };
    const names = (req.body.tools ?? []).map((t) => t.function.name);
    return names.includes('echo') ? { toolCalls: [{ name: 'echo', arguments: { text: 'bench' } }] } : { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] };
  });

  const port = await freePort();
  const env = berthEnv({ OH_SESSION_API_KEYS_0: API_KEY, LOG_LEVEL: 'warn', BERTH_DATA_DIR: ctx.tmpdir('berth-bench-mcp-'), BERTH_WARM_POOL_SIZE: '0', BERTH_REAPER_INTERVAL_MS: '0' });
  const berth = spawnNode('berth[mcp]', path.join(ctx.root, 'dist/apps/gateway/src/main.js'), { args: ['--host', HOST, '--port', String(port), '--role', 'all'], env, cwd: ctx.root });
  ctx.defer('stop berth[mcp]', () => berth.stop());
  await waitForHttp(berth, `http://${HOST}:${port}/ready`, { timeoutMs: 120_000 });
  const target = { host: HOST, port };
  const agent = keepAliveAgent(4);
  const call = async (method, p, body) => {
    const res = await request(agent, target, { method, path: p, headers: AUTH, body, readBody: true, timeoutMs: 120_000 });
    return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
  };

  const conversation = async (i, withMcp) => {
    const res = await call('POST', '/api/conversations', {
      agent: {
        kind: 'Agent',
        llm: { model: 'openai/stub', api_key: 'sk-bench', base_url: llm.url, num_retries: 0 },
        tools: [{ name: 'terminal' }],
        ...(withMcp ? { mcp_config: { fx: mcpStdioServer() } } : {}),
      },
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: { role: 'user', content: [{ type: 'text', text: `bench ${withMcp ? 'mcp' : 'plain'} ${i}` }], run: true },
    });
    if (res.status !== 201) throw new Error(`create answered ${res.status}: ${res.body}`);
    const id = res.json.id;
    for (const deadline = Date.now() + 60_000; ; ) {
      const info = (await call('GET', `/api/conversations/${id}`)).json;
      if (['finished', 'error', 'stuck'].includes(info.execution_status)) break;
      if (Date.now() > deadline) throw new Error(`conversation ${id} did not finish`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const events = (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).json.items;
    const action = events.find((e) => e.kind === 'ActionEvent' && e.tool_name === 'echo');
    const observation = events.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'echo');
    if (withMcp && (!action || !observation || observation.observation.is_error)) throw new Error(`conversation ${id}: the MCP call did not succeed`);
    await call('DELETE', `/api/conversations/${id}`);
    return { createMs: res.ms, callMs: withMcp ? eventTime(observation.timestamp) - eventTime(action.timestamp) : null };
  };

  const figures = {};
  for (const withMcp of [false, true]) {
    const created = [];
    const calls = [];
    for (let i = 0; i < WARM_UP + count; i++) {
      const r = await conversation(i, withMcp);
      if (i < WARM_UP) continue;
      created.push(r.createMs);
      if (r.callMs !== null) calls.push(r.callMs);
    }
    figures[withMcp ? 'mcp' : 'plain'] = { created: summarize(created), calls: calls.length ? summarize(calls) : null };
  }
  const line = (label, s) => log(`  ${label.padEnd(44)} p50 ${ms(s.p50).padStart(6)} ms   p95 ${ms(s.p95).padStart(6)} ms   max ${ms(s.max).padStart(6)} ms   (n=${s.n})`);
  log(`\n  MCP (embedded storage, bubblewrap sandboxes, no warm pool; ${count} conversations of each kind, one at a time)`);
  line('create with a first message, no MCP', figures.plain.created);
  line('create with a first message, one stdio server', figures.mcp.created);
  line('one MCP tool call (ActionEvent → Observation)', figures.mcp.calls);
  const startP50 = figures.mcp.created.p50 - figures.plain.created.p50;
  log(`  what the MCP server's start and tools/list add at p50: ${ms(startP50)} ms (target ≤ ${TARGET_START_P50_MS} ms)`);
  ctx.report({ bench: BENCH, storage: 'embedded', target: `MCP start p50 ≤ ${TARGET_START_P50_MS} ms`, measured: `${ms(startP50)} ms`, ok: startP50 <= TARGET_START_P50_MS });
  ctx.report({ bench: BENCH, storage: 'embedded', target: 'MCP tool call p50 (informational)', measured: `${ms(figures.mcp.calls.p50)} ms`, ok: null });
}

module.exports = { run };
