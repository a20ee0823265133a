import { closeServer, listenLocally, LlmStub, readBody, until } from '@berth/testing';
import { createServer, Server } from 'node:http';
import { BerthProcess, FaultLab } from './support/faults';
import { api, privateDatabase, SocketClient, startServer, STORAGES, TestServer, userMessage, waitForStatus } from './support/server';

const KEY = 'metrics-test-key';
const MODEL = 'openai/stub-model';

/** The value of one series of the exposition text (labels given must match, others may differ): the sum of those that match. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[3]);
      found = true;
    }
  }
  return found ? total : NaN;
}

async function scrape(server: { url: string }, authorization?: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${server.url}/metrics`, { headers: authorization ? { authorization } : {} });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** A scripted conversation: one terminal command, then finish, with the token usage given. */
async function runScripted(server: { url: string }, llm: LlmStub, text: string): Promise<string> {
  llm.script(text, [
    { text: 'Running it.', toolCalls: [{ name: 'terminal', arguments: { command: 'echo metered' } }], usage: { prompt_tokens: 7, completion_tokens: 3 } },
    { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }], usage: { prompt_tokens: 11, completion_tokens: 5 } },
  ]);
  const res = await api(server, 'POST', '/api/conversations', {
    key: KEY,
    body: {
      agent: { kind: 'Agent', llm: { model: MODEL, api_key: 'sk-stub', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: userMessage(text, true),
      autotitle: false,
    },
  });
  expect(res.status).toBe(201);
  const info = await waitForStatus(server, KEY, res.body.id, ['finished', 'error'], 60_000);
  expect(info.execution_status).toBe('finished');
  return res.body.id;
}

describe.each(STORAGES)('metrics (%s)', (storage) => {
  const llm = new LlmStub();
  let server: TestServer;
  // A database of its own: the run reconciler would take up runs other suites left in the shared one,
  // and the run gauges count them.
  let database: Awaited<ReturnType<typeof privateDatabase>> | null = null;

  beforeAll(async () => {
    await llm.start();
    if (storage === 'postgres') database = await privateDatabase('metrics');
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', ...(database ? { DATABASE_URL: database.url } : {}) });
  });
  afterAll(async () => {
    await server?.close();
    await llm.stop();
    await database?.drop();
  });

  it('serves the Prometheus text format without a key (no BERTH_METRICS_TOKEN), outside the API docs', async () => {
    const res = await scrape(server);
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain('# TYPE berth_http_request_duration_seconds histogram');
    expect(sample(res.text, 'berth_process_resident_memory_bytes')).toBeGreaterThan(0);
    // Defined before anything sets it (the webhooks helper does): listed with its help and type.
    expect(res.text).toContain('# TYPE berth_webhook_delivery_lag_seconds gauge');
    const doc = (await api(server, 'GET', '/openapi.json')).body;
    expect(Object.keys(doc.paths)).not.toContain('/metrics');
  });

  it('times requests by method, route pattern and status, never by raw URL', async () => {
    const id = '6d1f6c2e-1d44-4b8e-9a54-3c1f0f0e2a11';
    const route = { method: 'GET', route: '/api/conversations/:conversation_id' };
    const before = await scrape(server);
    const was404 = sample(before.text, 'berth_http_request_duration_seconds_count', { ...route, status: '404' }) || 0;
    const wasCount = sample(before.text, 'berth_http_request_duration_seconds_count', { method: 'GET', route: '/api/conversations/count', status: '200' }) || 0;
    for (let i = 0; i < 3; i++) expect((await api(server, 'GET', `/api/conversations/${id}`, { key: KEY })).status).toBe(404);
    expect((await api(server, 'GET', '/api/conversations/count', { key: KEY })).status).toBe(200);
    expect((await api(server, 'GET', '/no/such/route')).status).toBe(404);
    const after = (await scrape(server)).text;
    expect(sample(after, 'berth_http_request_duration_seconds_count', { ...route, status: '404' })).toBe(was404 + 3);
    expect(sample(after, 'berth_http_request_duration_seconds_count', { method: 'GET', route: '/api/conversations/count', status: '200' })).toBe(wasCount + 1);
    expect(sample(after, 'berth_http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    expect(after).not.toContain(id);
    expect(after).not.toContain('/no/such/route');
  });

  it('counts open sockets by kind, a scripted run, its LLM calls, tokens, events and sandbox start', async () => {
    const before = (await scrape(server)).text;
    const tokens = (kind: string, text: string) => sample(text, 'berth_llm_tokens_total', { model: MODEL, kind }) || 0;
    const llmCalls = (text: string) => sample(text, 'berth_llm_request_duration_seconds_count', { model: MODEL, outcome: 'ok' }) || 0;
    const events = (text: string) => sample(text, 'berth_events_recorded_total');
    const coldStarts = (text: string) => sample(text, 'berth_sandbox_provision_duration_seconds_count', { driver: 'local', pool: 'cold' }) || 0;

    const id = await runScripted(server, llm, `metered run ${storage}`);
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}`);
    await ws.waitFor((frames) => frames.length > 0);
    const during = (await scrape(server)).text;
    expect(sample(during, 'berth_websockets_open', { kind: 'events' })).toBe((sample(before, 'berth_websockets_open', { kind: 'events' }) || 0) + 1);
    ws.close();
    await ws.waitClosed();

    expect(tokens('prompt', during) - tokens('prompt', before)).toBe(18);
    expect(tokens('completion', during) - tokens('completion', before)).toBe(8);
    expect(llmCalls(during) - llmCalls(before)).toBe(2);
    // System prompt, message, status changes, action, observation, finish: all stored through the recorder.
    expect(events(during) - (events(before) || 0)).toBeGreaterThanOrEqual(6);
    expect(coldStarts(during) - coldStarts(before)).toBe(1);
    // Read from the queue at scrape time; the run is over and its slot free.
    expect(sample(during, 'berth_run_queue_jobs', { state: 'waiting' })).toBe(0);
    expect(sample(during, 'berth_run_queue_jobs', { state: 'active' })).toBeGreaterThanOrEqual(0);
    expect(sample(during, 'berth_runs_in_flight')).toBe(0);
    expect(sample(during, 'berth_reconcile_errors_total')).toBeNaN();

    const closed = (await scrape(server)).text;
    expect(sample(closed, 'berth_websockets_open', { kind: 'events' })).toBe(sample(before, 'berth_websockets_open', { kind: 'events' }) || 0);
  });

  it('counts a failed LLM call by model with outcome error', async () => {
    const before = (await scrape(server)).text;
    const errors = (text: string) => sample(text, 'berth_llm_request_duration_seconds_count', { model: MODEL, outcome: 'error' }) || 0;
    const text = `failing run ${storage}`;
    llm.script(text, [{ status: 400, errorCode: 'invalid_request_error' }]);
    const res = await api(server, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: MODEL, api_key: 'sk-stub', base_url: llm.url, num_retries: 0 }, tools: [] },
        workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
        initial_message: userMessage(text, true),
        autotitle: false,
      },
    });
    expect((await waitForStatus(server, KEY, res.body.id, ['error', 'finished'], 30_000)).execution_status).toBe('error');
    expect(errors((await scrape(server)).text) - errors(before)).toBe(1);
  });
});

describe('metrics behind BERTH_METRICS_TOKEN', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('embedded', { OH_SESSION_API_KEYS_0: KEY, BERTH_METRICS_TOKEN: 'scrape-token' });
  });
  afterAll(() => server?.close());

  it('answers 401 {"detail": …} without the bearer token, a wrong one or a session key; 200 with it', async () => {
    for (const authorization of [undefined, 'Bearer wrong', 'Bearer scrape-tokenx', 'scrape-token', `Bearer ${KEY}`]) {
      const res = await scrape(server, authorization);
      expect({ authorization, status: res.status, body: JSON.parse(res.text) }).toEqual({ authorization, status: 401, body: { detail: 'Unauthorized' } });
    }
    expect((await fetch(`${server.url}/metrics`, { headers: { 'X-Session-API-Key': KEY } })).status).toBe(401);
    const ok = await scrape(server, 'Bearer scrape-token');
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('berth_http_request_duration_seconds_bucket');
    // The probes stay open.
    expect((await api(server, 'GET', '/health')).status).toBe(200);
  });
});

describe("a worker's own /metrics (gateway and worker as separate processes)", () => {
  const lab = new FaultLab();
  const llm = new LlmStub();
  let gateway: BerthProcess;
  let worker: BerthProcess;

  beforeAll(async () => {
    await llm.start();
    await lab.startPostgres();
    await lab.startRedis();
    const env = { OH_SESSION_API_KEYS_0: KEY, BERTH_METRICS_TOKEN: 'worker-scrape-token' };
    gateway = await lab.startGateway({ env });
    worker = await lab.startWorker({ env });
  });
  afterAll(async () => {
    await lab.close();
    await llm.stop();
  });

  it('counts the LLM calls, tokens and events the worker made, behind the same token; the gateway its requests and the sandbox start', async () => {
    await runScripted(gateway, llm, 'a run the worker meters');
    expect((await scrape(worker)).status).toBe(401);
    expect((await scrape(worker, 'Bearer wrong')).status).toBe(401);
    const fromWorker = await scrape(worker, 'Bearer worker-scrape-token');
    expect(fromWorker.status).toBe(200);
    expect(fromWorker.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(fromWorker.text, 'berth_llm_request_duration_seconds_count', { model: MODEL, outcome: 'ok' })).toBe(2);
    expect(sample(fromWorker.text, 'berth_llm_tokens_total', { model: MODEL, kind: 'prompt' })).toBe(18);
    expect(sample(fromWorker.text, 'berth_llm_tokens_total', { model: MODEL, kind: 'completion' })).toBe(8);
    // The run's status is stored as finished a moment before its job lets go of its slot.
    await until(async () => sample((await scrape(worker, 'Bearer worker-scrape-token')).text, 'berth_runs_in_flight') === 0, 'the worker has no run in flight');
    expect(sample(fromWorker.text, 'berth_events_recorded_total')).toBeGreaterThanOrEqual(4);
    // The gateway answered the requests and made no LLM call: each process reports its own work.
    const fromGateway = await scrape(gateway, 'Bearer worker-scrape-token');
    expect(sample(fromGateway.text, 'berth_llm_request_duration_seconds_count', { model: MODEL, outcome: 'ok' })).toBeNaN();
    expect(sample(fromGateway.text, 'berth_http_request_duration_seconds_count', { method: 'POST', route: '/api/conversations' })).toBe(1);
    // The create makes the agent ready, its sandbox started, before it answers: on the gateway.
    expect(sample(fromGateway.text, 'berth_sandbox_provision_duration_seconds_count', { driver: 'local', pool: 'cold' })).toBe(1);
    expect(sample(fromWorker.text, 'berth_sandbox_provision_duration_seconds_count', { driver: 'local', pool: 'cold' }) || 0).toBe(0);
    // The probes stay open without the token.
    expect((await fetch(`${worker.url}/ready`)).status).toBe(200);
  });
});

/** A faithful OTLP/HTTP collector: takes the JSON exporter's POST /v1/traces and keeps what it sent. */
class OtlpCollector {
  readonly posts: { path: string; contentType: string | undefined; body: any }[] = [];
  private server?: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void readBody(req).then((text) => {
        this.posts.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(text) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    this.url = `http://127.0.0.1:${await listenLocally(this.server)}`;
  }

  stop(): Promise<void> {
    return closeServer(this.server);
  }

  /** Every span received, with its resource's service.name. */
  spans(): { service: string; name: string; spanId: string; parentSpanId?: string; traceId: string; attributes: Record<string, unknown> }[] {
    const value = (v: any) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
    const attrs = (list: any[] = []) => Object.fromEntries(list.map((a) => [a.key, value(a.value)]));
    return this.posts.flatMap((post) =>
      post.body.resourceSpans.flatMap((rs: any) =>
        rs.scopeSpans.flatMap((ss: any) =>
          ss.spans.map((s: any) => ({ service: attrs(rs.resource.attributes)['service.name'], name: s.name, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, traceId: s.traceId, attributes: attrs(s.attributes) })),
        ),
      ),
    );
  }
}

describe('traces with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  const llm = new LlmStub();
  const collector = new OtlpCollector();

  beforeAll(async () => {
    await Promise.all([llm.start(), collector.start()]);
  });
  afterAll(async () => {
    await Promise.all([llm.stop(), collector.stop()]);
  });

  it('exports spans of a request, a run, its LLM calls and its tool call to the collector, as OTEL_SERVICE_NAME', async () => {
    const server = await startServer('embedded', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/`, OTEL_SERVICE_NAME: 'berth-traced' });
    try {
      expect((await api(server, 'GET', '/api/conversations/count', { key: KEY })).status).toBe(200);
      await runScripted(server, llm, 'traced run');
    } finally {
      // Shutting down sends the spans still buffered.
      await server.close();
    }
    expect(collector.posts.length).toBeGreaterThan(0);
    for (const post of collector.posts) expect(post).toMatchObject({ path: '/v1/traces', contentType: 'application/json' });
    const spans = collector.spans();
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['berth-traced']));

    const request = spans.find((s) => s.name === 'GET /api/conversations/count');
    expect(request?.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.route': '/api/conversations/count', 'http.response.status_code': 200 });

    const runs = spans.filter((s) => s.name === 'run');
    expect(runs.length).toBeGreaterThanOrEqual(1);
    const llmCalls = spans.filter((s) => s.name === 'llm.completion');
    expect(llmCalls).toHaveLength(2);
    const tools = spans.filter((s) => s.name === 'tool.call');
    expect(tools.map((s) => s.attributes['gen_ai.tool.name']).sort()).toEqual(['finish', 'terminal']);
    // LLM and tool calls are children of their run's span.
    for (const child of [...llmCalls, ...tools]) expect(runs.map((r) => r.spanId)).toContain(child.parentSpanId);
    expect(llmCalls[0].attributes).toMatchObject({ 'gen_ai.request.model': MODEL, 'gen_ai.usage.input_tokens': 7, 'gen_ai.usage.output_tokens': 3 });
    // No secret reaches a span.
    expect(JSON.stringify(collector.posts)).not.toContain('sk-stub');
  });
});
