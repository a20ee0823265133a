import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The process's one registry: gateway, worker and the libraries record into it without importing
 * each other, and /metrics (gateway) or the worker's probe port exposes it.
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'berth_' });

const registers = [metricsRegistry];

/** Buckets for calls that take from milliseconds (an HTTP route) to minutes (an LLM, a pod). */
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export const httpRequestDuration = new Histogram({
  name: 'berth_http_request_duration_seconds',
  help: 'HTTP requests served by the gateway, by method, route pattern and status code',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: SECONDS_BUCKETS,
  registers,
});

export const openWebSockets = new Gauge({
  name: 'berth_websockets_open',
  help: 'WebSockets open on the gateway, by socket kind (events, session, bash-events)',
  labelNames: ['kind'] as const,
  registers,
});

export const runsInFlight = new Gauge({
  name: 'berth_runs_in_flight',
  help: 'Conversation runs this process is executing',
  registers,
});

export const sandboxProvisionDuration = new Histogram({
  name: 'berth_sandbox_provision_duration_seconds',
  help: 'Time to provision a new sandbox, by driver and whether a warm-pool executor took it (warm) or one was started (cold)',
  labelNames: ['driver', 'pool'] as const,
  buckets: SECONDS_BUCKETS,
  registers,
});

export const llmRequestDuration = new Histogram({
  name: 'berth_llm_request_duration_seconds',
  help: 'LLM chat completions, by model and outcome (ok, error)',
  labelNames: ['model', 'outcome'] as const,
  buckets: SECONDS_BUCKETS,
  registers,
});

export const llmTokens = new Counter({
  name: 'berth_llm_tokens_total',
  help: 'Tokens the LLMs reported, by model and kind (prompt, completion)',
  labelNames: ['model', 'kind'] as const,
  registers,
});

export const eventsRecorded = new Counter({
  name: 'berth_events_recorded_total',
  help: 'Conversation events stored and published (rate() gives events per second)',
  registers,
});

export const reconcileErrors = new Counter({
  name: 'berth_reconcile_errors_total',
  help: 'Failed periodic passes, or failed sandboxes within a pass, by loop (reconciler, sandbox-reconciler, sandbox-reaper)',
  labelNames: ['loop'] as const,
  registers,
});
