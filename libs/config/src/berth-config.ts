import { isAbsolute, resolve } from 'node:path';
import { KubernetesConfig, readKubernetesConfig } from './kubernetes-config';

export type Role = 'all' | 'gateway' | 'worker';

/** One webhook receiver (contract §8): events in batches, ConversationInfo on lifecycle changes. */
export interface WebhookSpec {
  baseUrl: string;
  headers: Record<string, string>;
  /** events per POST; a batch is sent as soon as this many are waiting */
  eventBufferSize: number;
  /** how long the first waiting event may wait for others to join its batch */
  flushDelayMs: number;
  numRetries: number;
  /** delay before the first retry; doubles on each further one unless Retry-After says otherwise */
  retryDelayMs: number;
  /** undelivered events kept per conversation (older ones are dropped) and conversation updates queued */
  maxQueueSize: number;
  maxBatchBytes: number;
}

/** Per-tenant limits; 0 = no limit. A tenant's own `quotas` override these defaults field by field. */
export interface TenantLimits {
  /** sandboxes starting or running at once */
  maxSandboxes: number;
  /** conversations running at once */
  maxRunningConversations: number;
  /** authenticated API requests per minute (all of the tenant's keys together) */
  requestsPerMinute: number;
  /** open WebSockets per API key */
  maxSocketsPerKey: number;
}

/** The variable the secret key was read from; `data-dir` = none set, a generated key kept in the data dir. */
export type SecretKeySource = 'OH_SECRET_KEY' | 'SESSION_API_KEY' | 'OH_SESSION_API_KEYS' | 'data-dir';

/** Everything Berth reads from its environment, parsed once at start-up (README "Configuration"). */
export interface BerthConfig {
  host: string;
  port: number;
  role: Role;
  /** Keys of the default tenant (OH_SESSION_API_KEYS*, SESSION_API_KEY); empty = open server. */
  sessionApiKeys: string[];
  /** Keys of /api/admin/* (BERTH_ADMIN_API_KEYS*); empty = the admin API refuses everyone. */
  adminApiKeys: string[];
  /** BERTH_TENANT_* defaults of every tenant's quotas */
  tenantLimits: TenantLimits;
  corsOrigins: string[];
  corsOriginRegex: string | null;
  dockerHostAddr: string | null;
  /** PostgreSQL URL; null = embedded PGlite under dataDir. */
  databaseUrl: string | null;
  /** PostgreSQL connections per process */
  dbPoolSize: number;
  /** shared_buffers of the embedded database (PGlite), MiB: resident from start, so kept small (the OS caches its files too) */
  embeddedSharedBuffersMb: number;
  /** Redis URL; null = in-process queue and event bus. */
  redisUrl: string | null;
  /** Key prefix of Berth's BullMQ queues in Redis (lets several deployments share one Redis). */
  queuePrefix: string;
  dataDir: string;
  conversationsPath: string;
  /** Fernet key material (OH_SECRET_KEY → SESSION_API_KEY → OH_SESSION_API_KEYS_0), null if none. */
  secretKey: string | null;
  /** Where secretKey came from: a session key as source means rotating that key rotates this one. */
  secretKeySource: SecretKeySource;
  /** Earlier secret keys (OH_PREVIOUS_SECRET_KEYS*): they still decrypt, never encrypt. */
  previousSecretKeys: string[];
  /** Rows per store the start-up pass over stored secrets reads (BERTH_SECRET_SCAN_ROWS); 0 = no pass. */
  secretScanRows: number;
  maxBodyBytes: number;
  wsMaxBufferBytes: number;
  wsMaxSubscribers: number;
  wsAuthTimeoutMs: number;
  /** sockets one client address may hold open while they have not authenticated yet */
  wsMaxPendingPerAddress: number;
  maxConcurrentRuns: number;
  /** running conversations of all tenants together (BERTH_MAX_CONCURRENT_RUNS, 0 = no limit): beyond it, starting a run answers 429 */
  maxServerRuns: number;
  /** Where a conversation's LookupSecret may be fetched from: `public` addresses only, or `any` (trusted networks). */
  secretLookupHosts: 'public' | 'any';
  /** how long a silent worker keeps its runs before another worker takes them over */
  runStallMs: number;
  /** how often idle sandboxes are looked for (0 = never) */
  reaperIntervalMs: number;
  /** how often the sandbox reconciler drives observed state towards desired and removes orphans (0 = never) */
  sandboxReconcileMs: number;
  /** executors each process keeps started for the next new sandboxes (0 = start them on demand) */
  warmPoolSize: number;
  /** When the warm pool fills: `demand` (after this process's first new sandbox) or `start` */
  warmPoolFill: 'demand' | 'start';
  /** How the local driver confines a sandbox: `bwrap` (namespaces, own uid, limits) or `none` (a plain child process). */
  sandboxIsolation: SandboxIsolationMode;
  /** A sandbox's network unless its spec says otherwise: `none` (own loopback only) or `egress` (outside, never the host). */
  sandboxNetwork: SandboxNetwork;
  /** First host uid of sandboxes when the server runs as root (each sandbox gets base + hash(id) mod 2^24). */
  sandboxUidBase: number;
  sandboxLimits: SandboxLimits;
  /** BERTH_SANDBOX_DRIVER: child processes on this host, or pods of a Kubernetes cluster */
  sandboxDriver: 'local' | 'kubernetes';
  /** the Kubernetes driver's settings (BERTH_K8S_*), null with the local driver */
  kubernetes: KubernetesConfig | null;
  /** LOG_LEVEL in pino's names (read case-insensitively, with Nest's and Python's names for them too) */
  logLevel: LogLevel;
  /** LOG_FORMAT: JSON lines, or pino-pretty's coloured lines (the default only when stdout is a terminal) */
  logFormat: LogFormat;
  /** DEBUG: 5xx bodies carry the stack trace, as OpenHands does. */
  debug: boolean;
  webhooks: WebhookSpec[];
  /** BERTH_METRICS_TOKEN: /metrics asks for `Authorization: Bearer <it>`; null = /metrics is open, as /health */
  metricsToken: string | null;
  /** Where OpenTelemetry spans go (OTLP/HTTP); null = no tracing (the SDK is never loaded). */
  tracing: { tracesUrl: string; serviceName: string | null } | null;
}

export type SandboxIsolationMode = 'bwrap' | 'none';
export type LogFormat = 'json' | 'pretty';
export type SandboxNetwork = 'none' | 'egress';

/** What one sandbox may use (0 = no limit). */
export interface SandboxLimits {
  /** memory of all its processes (cgroup, where the machine has one) */
  memoryBytes: number;
  /** its processes and threads (cgroup pids, and RLIMIT_NPROC when it has its own uid) */
  processes: number;
  /** open files per process (RLIMIT_NOFILE) */
  openFiles: number;
  /** CPU seconds per process (RLIMIT_CPU) */
  cpuSeconds: number;
  /** largest file a process may write (RLIMIT_FSIZE) */
  fileSizeBytes: number;
  /** its folder's disk usage; over it the sandbox is stopped */
  diskBytes: number;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

/** Reads an OpenHands-style list: a JSON array in NAME, or NAME_0, NAME_1, … up to the first gap. */
export function readEnvList(env: Env, name: string): string[] | undefined {
  const json = env[name];
  if (json !== undefined && json.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new ConfigError(`${name} must be a JSON list of strings`);
    }
    if (!Array.isArray(parsed) || parsed.some((v) => typeof v !== 'string')) {
      throw new ConfigError(`${name} must be a JSON list of strings`);
    }
    return parsed as string[];
  }
  const items: string[] = [];
  for (let i = 0; env[`${name}_${i}`] !== undefined; i++) items.push(env[`${name}_${i}`] as string);
  return items.length ? items : undefined;
}

function readInt(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

/** A duration given in seconds (OpenHands style), returned in milliseconds. */
function readSeconds(env: Env, name: string, fallbackSeconds: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallbackSeconds * 1000;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new ConfigError(`${name} must be a number of seconds ≥ ${min}, got "${raw}"`);
  return Math.round(value * 1000);
}

/** OH_WEBHOOKS_<n>_* (n from 0 up to the first gap) or a JSON list in OH_WEBHOOKS, as OpenHands reads them. */
export function readWebhooks(env: Env): WebhookSpec[] {
  const fromJson = env.OH_WEBHOOKS?.trim() ? parseWebhookJson(env.OH_WEBHOOKS) : undefined;
  const specs: WebhookSpec[] = [];
  for (let i = 0; fromJson ? i < fromJson.length : env[`OH_WEBHOOKS_${i}_BASE_URL`] !== undefined; i++) {
    const prefix = `OH_WEBHOOKS_${i}_`;
    // The JSON form is read through the same field parsers as the indexed variables.
    const fields: Env = fromJson
      ? Object.fromEntries(Object.entries(fromJson[i]).map(([k, v]) => [prefix + k.toUpperCase(), typeof v === 'string' ? v : JSON.stringify(v)]))
      : env;
    const baseUrl = (fields[`${prefix}BASE_URL`] ?? '').replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]/.test(baseUrl)) throw new ConfigError(`${prefix}BASE_URL must be an http(s) URL, got "${baseUrl}"`);
    let headers: Record<string, string> = {};
    const rawHeaders = fields[`${prefix}HEADERS`];
    if (rawHeaders) {
      try {
        headers = JSON.parse(rawHeaders);
      } catch {
        throw new ConfigError(`${prefix}HEADERS must be a JSON object of strings`);
      }
      if (typeof headers !== 'object' || headers === null || Array.isArray(headers) || Object.values(headers).some((v) => typeof v !== 'string')) {
        throw new ConfigError(`${prefix}HEADERS must be a JSON object of strings`);
      }
    }
    specs.push({
      baseUrl,
      headers,
      eventBufferSize: readInt(fields, `${prefix}EVENT_BUFFER_SIZE`, 5, 1, 10_000),
      flushDelayMs: readSeconds(fields, `${prefix}FLUSH_DELAY`, 30, 0.001),
      numRetries: readInt(fields, `${prefix}NUM_RETRIES`, 3, 0, 100),
      retryDelayMs: readSeconds(fields, `${prefix}RETRY_DELAY`, 5, 0),
      maxQueueSize: readInt(fields, `${prefix}MAX_QUEUE_SIZE`, 1000, 1),
      maxBatchBytes: readInt(fields, `${prefix}MAX_BATCH_BYTES`, 5 * 1024 * 1024, 1024),
    });
  }
  return specs;
}

function parseWebhookJson(json: string): Record<string, unknown>[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    parsed = null;
  }
  if (!Array.isArray(parsed) || parsed.some((v) => typeof v !== 'object' || v === null || Array.isArray(v))) {
    throw new ConfigError('OH_WEBHOOKS must be a JSON list of webhook objects');
  }
  return parsed as Record<string, unknown>[];
}

const MIB = 1024 * 1024;

/** What a sandbox may use unless BERTH_SANDBOX_* say otherwise. */
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = {
  memoryBytes: 2048 * MIB,
  processes: 512,
  openFiles: 4096,
  cpuSeconds: 3600,
  fileSizeBytes: 2048 * MIB,
  diskBytes: 10_240 * MIB,
};

/** One of `choices`, the first being the default. */
function readChoice<T extends string>(env: Env, name: string, choices: readonly T[]): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return choices[0];
  if (!(choices as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${choices.join(', ')} (got ${JSON.stringify(raw)})`);
  return raw as T;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Other names people bring: Nest's (log, verbose), OpenHands' Python ones (CRITICAL, WARNING), none. */
const LOG_LEVEL_ALIASES: Record<string, LogLevel> = { critical: 'fatal', warning: 'warn', log: 'info', verbose: 'trace', none: 'silent' };
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function readLogLevel(env: Env): LogLevel {
  const raw = env.LOG_LEVEL?.trim().toLowerCase();
  if (!raw) return 'info';
  const level = LOG_LEVEL_ALIASES[raw] ?? (LOG_LEVELS as readonly string[]).find((name) => name === raw);
  if (!level) throw new ConfigError(`LOG_LEVEL must be one of ${[...LOG_LEVELS, ...Object.keys(LOG_LEVEL_ALIASES)].join(', ')} (got ${JSON.stringify(env.LOG_LEVEL)})`);
  return level as LogLevel;
}

function readFlag(env: Env, name: string): boolean {
  return ['1', 'TRUE', 'YES'].includes((env[name] ?? '').toUpperCase());
}

/** As OpenHands: OH_SECRET_KEY, else the first session key (SESSION_API_KEY before OH_SESSION_API_KEYS). */
function readSecretKey(env: Env, sessionApiKeys: string[]): { secretKey: string | null; secretKeySource: SecretKeySource } {
  if (env.OH_SECRET_KEY) return { secretKey: env.OH_SECRET_KEY, secretKeySource: 'OH_SECRET_KEY' };
  if (env.SESSION_API_KEY) return { secretKey: env.SESSION_API_KEY, secretKeySource: 'SESSION_API_KEY' };
  const first = env.OH_SESSION_API_KEYS_0 || sessionApiKeys[0];
  return first ? { secretKey: first, secretKeySource: 'OH_SESSION_API_KEYS' } : { secretKey: null, secretKeySource: 'data-dir' };
}

/** `--host H --port P --role R` (also `--host=H`), as the OpenHands launcher accepts. */
export function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq > 0) out[arg.slice(2, eq)] = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[arg.slice(2)] = argv[++i];
    else out[arg.slice(2)] = 'true';
  }
  return out;
}

export function loadConfig(env: Env = process.env, argv: string[] = process.argv.slice(2)): BerthConfig {
  const args = parseArgs(argv);
  const ohKeys = readEnvList(env, 'OH_SESSION_API_KEYS');
  const sessionApiKeys = (ohKeys ?? (env.SESSION_API_KEY ? [env.SESSION_API_KEY] : [])).filter((k) => k !== '');
  const adminApiKeys = (readEnvList(env, 'BERTH_ADMIN_API_KEYS') ?? []).filter((k) => k !== '');
  // A key that opens both doors would make a tenant key an admin key.
  if (adminApiKeys.some((k) => sessionApiKeys.includes(k))) throw new ConfigError('a BERTH_ADMIN_API_KEYS key is also a session API key');
  const portRaw = args.port ?? (env.PORT || undefined);
  const port = portRaw === undefined ? 8000 : /^\d{1,5}$/.test(portRaw) ? Number(portRaw) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`invalid port "${portRaw}"`);
  const role = (args.role ?? env.BERTH_ROLE ?? 'all') as Role;
  if (!['all', 'gateway', 'worker'].includes(role)) throw new ConfigError(`--role must be all, gateway or worker`);
  const dataDir = resolve(env.BERTH_DATA_DIR ?? 'workspace');
  const conversationsPath = env.OH_CONVERSATIONS_PATH ?? 'workspace/conversations';
  const corsOriginRegex = env.OH_ALLOW_CORS_ORIGIN_REGEX || null;
  if (corsOriginRegex) {
    try {
      new RegExp(corsOriginRegex);
    } catch {
      throw new ConfigError('OH_ALLOW_CORS_ORIGIN_REGEX is not a valid regular expression');
    }
  }
  const warmPoolSize = readInt(env, 'BERTH_WARM_POOL_SIZE', 2, 0, 100);
  const sandboxDriver = readChoice(env, 'BERTH_SANDBOX_DRIVER', ['local', 'kubernetes'] as const);
  const kubernetes =
    sandboxDriver === 'kubernetes'
      ? readKubernetesConfig(env, warmPoolSize, (message) => {
          throw new ConfigError(message);
        })
      : null;
  return {
    host: args.host ?? env.HOST ?? '127.0.0.1',
    port,
    role,
    sessionApiKeys,
    adminApiKeys,
    tenantLimits: {
      // A hosted tenant is bounded unless an admin says otherwise (the default tenant is not: see effectiveLimits).
      maxSandboxes: readInt(env, 'BERTH_TENANT_MAX_SANDBOXES', 20),
      maxRunningConversations: readInt(env, 'BERTH_TENANT_MAX_RUNNING_CONVERSATIONS', 10),
      requestsPerMinute: readInt(env, 'BERTH_TENANT_REQUESTS_PER_MINUTE', 1200),
      maxSocketsPerKey: readInt(env, 'BERTH_TENANT_MAX_SOCKETS_PER_KEY', 50),
    },
    corsOrigins: readEnvList(env, 'OH_ALLOW_CORS_ORIGINS') ?? [],
    corsOriginRegex,
    dockerHostAddr: env.DOCKER_HOST_ADDR || null,
    databaseUrl: env.DATABASE_URL || null,
    dbPoolSize: readInt(env, 'BERTH_DB_POOL_SIZE', 20, 1, 1000),
    embeddedSharedBuffersMb: readInt(env, 'BERTH_EMBEDDED_SHARED_BUFFERS_MB', 16, 1, 1024),
    redisUrl: env.REDIS_URL || null,
    queuePrefix: env.BERTH_QUEUE_PREFIX || 'berth',
    dataDir,
    conversationsPath: isAbsolute(conversationsPath) ? conversationsPath : conversationsPath.replace(/\/+$/, ''),
    ...readSecretKey(env, sessionApiKeys),
    previousSecretKeys: (readEnvList(env, 'OH_PREVIOUS_SECRET_KEYS') ?? []).filter((k) => k.trim() !== ''),
    secretScanRows: readInt(env, 'BERTH_SECRET_SCAN_ROWS', 10_000, 0),
    maxBodyBytes: readInt(env, 'BERTH_MAX_BODY_BYTES', 10 * 1024 * 1024, 1024),
    wsMaxBufferBytes: readInt(env, 'BERTH_WS_MAX_BUFFER_BYTES', 8 * 1024 * 1024, 1024),
    wsMaxSubscribers: readInt(env, 'BERTH_WS_MAX_SUBSCRIBERS', 50, 1),
    wsAuthTimeoutMs: readInt(env, 'BERTH_WS_AUTH_TIMEOUT_MS', 10_000, 100),
    wsMaxPendingPerAddress: readInt(env, 'BERTH_WS_MAX_PENDING_PER_ADDRESS', 16, 1),
    maxConcurrentRuns: readInt(env, 'OH_MAX_CONCURRENT_RUNS', 10, 1),
    maxServerRuns: readInt(env, 'BERTH_MAX_CONCURRENT_RUNS', 0, 0),
    secretLookupHosts: readChoice(env, 'BERTH_SECRET_LOOKUP_HOSTS', ['public', 'any'] as const),
    runStallMs: readInt(env, 'BERTH_RUN_STALL_MS', 30_000, 500),
    reaperIntervalMs: readInt(env, 'BERTH_REAPER_INTERVAL_MS', 30_000, 0),
    sandboxReconcileMs: readInt(env, 'BERTH_SANDBOX_RECONCILE_MS', 30_000, 0),
    warmPoolSize,
    warmPoolFill: readChoice(env, 'BERTH_WARM_POOL_FILL', ['demand', 'start'] as const),
    sandboxIsolation: readChoice(env, 'BERTH_SANDBOX_ISOLATION', ['bwrap', 'none'] as const),
    sandboxNetwork: readChoice(env, 'BERTH_SANDBOX_NETWORK', ['none', 'egress'] as const),
    sandboxUidBase: readInt(env, 'BERTH_SANDBOX_UID_BASE', 100_000, 1000, 2 ** 31 - 2 ** 24 - 1),
    sandboxLimits: {
      memoryBytes: readInt(env, 'BERTH_SANDBOX_MEMORY_MB', DEFAULT_SANDBOX_LIMITS.memoryBytes / MIB, 0) * MIB,
      processes: readInt(env, 'BERTH_SANDBOX_PROCESSES', DEFAULT_SANDBOX_LIMITS.processes, 0),
      openFiles: readInt(env, 'BERTH_SANDBOX_OPEN_FILES', DEFAULT_SANDBOX_LIMITS.openFiles, 0),
      cpuSeconds: readInt(env, 'BERTH_SANDBOX_CPU_SECONDS', DEFAULT_SANDBOX_LIMITS.cpuSeconds, 0),
      fileSizeBytes: readInt(env, 'BERTH_SANDBOX_FILE_SIZE_MB', DEFAULT_SANDBOX_LIMITS.fileSizeBytes / MIB, 0) * MIB,
      diskBytes: readInt(env, 'BERTH_SANDBOX_DISK_MB', DEFAULT_SANDBOX_LIMITS.diskBytes / MIB, 0) * MIB,
    },
    sandboxDriver,
    kubernetes,
    logLevel: readLogLevel(env),
    // The first choice is the default: colours for a person at a terminal, JSON lines for everything else.
    logFormat: readChoice(env, 'LOG_FORMAT', process.stdout.isTTY ? (['pretty', 'json'] as const) : (['json', 'pretty'] as const)),
    debug: readFlag(env, 'DEBUG'),
    webhooks: readWebhooks(env),
    metricsToken: env.BERTH_METRICS_TOKEN || null,
    tracing: readTracing(env),
  };
}

/** The OTLP traces URL as the OpenTelemetry exporters read it: the signal's own variable as given, or the base one + /v1/traces. */
function readTracing(env: Env): BerthConfig['tracing'] {
  const own = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!own && !base) return null;
  const tracesUrl = own || `${base!.replace(/\/+$/, '')}/v1/traces`;
  if (!/^https?:\/\/[^/]/.test(tracesUrl)) {
    throw new ConfigError(`${own ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT'} must be an http(s) URL, got "${own || base}"`);
  }
  return { tracesUrl, serviceName: env.OTEL_SERVICE_NAME?.trim() || null };
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

/** For entry points: the configuration, or a one-line error and exit code 2. */
export function loadConfigOrExit(program: string): BerthConfig {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`${program}: configuration error: ${err.message}`);
    process.exit(2);
  }
}
