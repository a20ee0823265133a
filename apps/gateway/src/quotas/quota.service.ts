import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig, SandboxNetwork, TenantLimits } from '@berth/config';
import type { TenantQuotas } from '@berth/contracts';
import { Database, DEFAULT_TENANT_ID } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Principal } from '../common/tenant.decorator';
import { SharedState } from './shared-state';
import { TenancyEpoch } from './tenancy-epoch';
import { rateLimitHeaders, TooManyRequests } from './too-many-requests';

const MINUTE_MS = 60_000;
/** A socket's slot lapses this long after its replica stopped renewing it (a replica that died). */
const SOCKET_SLOT_TTL_MS = 60_000;
const SOCKET_RENEW_MS = 20_000;
/** How long a client over a concurrency limit is told to wait: a sandbox or a run may end any time. */
const CONCURRENCY_RETRY_S = 5;
const CACHE_MS = 10_000;
/** Sandboxes holding an executor; paused, stopped and failed ones only keep their files. */
export const LIVE_SANDBOX_STATUSES = ['starting', 'running'];

const NO_LIMITS: TenantLimits = { maxSandboxes: 0, maxRunningConversations: 0, requestsPerMinute: 0, maxSocketsPerKey: 0 };

/**
 * The tenant's stored quotas over the BERTH_TENANT_* defaults. Those defaults bound the tenants an
 * admin makes; the default tenant (OH_SESSION_API_KEYS_*, a single-tenant or embedded server's only
 * one) has no limit but the quotas stored for it.
 */
export function effectiveLimits(tenantId: string, configured: TenantLimits, quotas: TenantQuotas): TenantLimits {
  const defaults = tenantId === DEFAULT_TENANT_ID ? NO_LIMITS : configured;
  return {
    maxSandboxes: quotas.max_sandboxes ?? defaults.maxSandboxes,
    maxRunningConversations: quotas.max_running_conversations ?? defaults.maxRunningConversations,
    requestsPerMinute: quotas.requests_per_minute ?? defaults.requestsPerMinute,
    maxSocketsPerKey: quotas.max_sockets_per_key ?? defaults.maxSocketsPerKey,
  };
}

/**
 * The most network the tenant's sandboxes may have, and what they get by default: its quota over
 * BERTH_SANDBOX_NETWORK (enforced where sandboxes are made and started: SandboxManager).
 */
export function effectiveNetwork(serverDefault: SandboxNetwork, quotas: TenantQuotas): SandboxNetwork {
  return quotas.network ?? serverDefault;
}

/**
 * Per-tenant limits (0 = none): concurrent sandboxes and running conversations counted from the
 * database, requests per minute and sockets per key counted in the shared state (Redis across
 * replicas). Over a limit: 429 with Retry-After and X-RateLimit-* headers.
 */
@Injectable()
export class QuotaService implements OnModuleDestroy {
  private readonly cache = new Map<string, { limits: TenantLimits; epoch: number; at: number }>();
  /** this replica's open sockets' slots, renewed while they stay open */
  private readonly sockets = new Map<string, Set<string>>();
  private readonly renewer: NodeJS.Timeout;

  constructor(
    private readonly db: Database,
    private readonly state: SharedState,
    private readonly epoch: TenancyEpoch,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {
    this.renewer = setInterval(() => void this.renewSockets(), SOCKET_RENEW_MS);
    this.renewer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.renewer);
  }

  /** What applies to the tenant now (cached briefly; a quota change is seen at once through the epoch). */
  async limitsOf(tenantId: string): Promise<TenantLimits> {
    const epoch = await this.epoch.current();
    const hit = this.cache.get(tenantId);
    if (hit && hit.epoch === epoch && Date.now() - hit.at < CACHE_MS) return hit.limits;
    const row = await this.db.prisma.tenant.findUnique({ where: { id: tenantId }, select: { quotas: true } });
    const limits = effectiveLimits(tenantId, this.config.tenantLimits, (row?.quotas ?? {}) as TenantQuotas);
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(tenantId, { limits, epoch, at: Date.now() });
    return limits;
  }

  /** Counts an API request against the tenant's rate; the headers to send, or null without a limit. */
  async countRequest(p: Principal): Promise<Record<string, string> | null> {
    const { requestsPerMinute: limit } = await this.limitsOf(p.tenantId);
    if (!limit) return null;
    const { count, resetAt } = await this.state.hit(`requests:${p.tenantId}`, MINUTE_MS);
    const reset = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000));
    if (count > limit) throw new TooManyRequests(`Rate limit exceeded: ${limit} requests per minute`, limit, reset);
    return rateLimitHeaders(limit, limit - count, reset);
  }

  /**
   * Creates a sandbox row only if the tenant stays within its limit. The row is written first and
   * counted after, so two creations racing on two replicas cannot both slip under the limit.
   */
  async admitSandbox<T extends { id: string }>(tenantId: string, create: () => Promise<T>): Promise<T> {
    const { maxSandboxes: limit } = await this.limitsOf(tenantId);
    const row = await create();
    if (limit && (await this.liveSandboxes(tenantId)) > limit) {
      await this.db.prisma.sandbox.deleteMany({ where: { id: row.id } });
      throw this.sandboxLimit(limit);
    }
    return row;
  }

  /** Before a sandbox starts (a resumed one, a conversation's own): 429 when the tenant is at its limit. */
  async checkSandboxStart(tenantId: string, sandboxId?: string): Promise<void> {
    const { maxSandboxes: limit } = await this.limitsOf(tenantId);
    if (!limit) return;
    const live = await this.db.prisma.sandbox.count({
      where: { tenantId, status: { in: LIVE_SANDBOX_STATUSES }, ...(sandboxId ? { id: { not: sandboxId } } : {}) },
    });
    if (live >= limit) throw this.sandboxLimit(limit);
  }

  /** Before a conversation is created: its own sandbox and its first run (with an initial message) must fit. */
  async admitConversation(tenantId: string, needs: { ownSandbox: boolean; run: boolean }): Promise<void> {
    if (needs.ownSandbox) await this.checkSandboxStart(tenantId);
    if (needs.run) await this.checkRunStart(tenantId);
  }

  /**
   * Before a run starts: 429 when the server's run capacity (BERTH_MAX_CONCURRENT_RUNS, all tenants
   * together, as OpenHands' `max_concurrent_runs`) or the tenant's limit is reached (a conversation
   * already running is left to answer 409).
   */
  async checkRunStart(tenantId: string, conversationId?: string): Promise<void> {
    await this.checkServerRuns(conversationId);
    const { maxRunningConversations: limit } = await this.limitsOf(tenantId);
    if (!limit) return;
    const running = await this.db.prisma.conversation.findMany({ where: { tenantId, executionStatus: 'running' }, select: { id: true }, take: limit + 1 });
    const others = running.filter((r) => r.id !== conversationId);
    if (others.length >= limit && others.length === running.length) {
      throw new TooManyRequests(`Too many running conversations: the limit is ${limit}`, limit, CONCURRENCY_RETRY_S);
    }
  }

  private async checkServerRuns(conversationId?: string): Promise<void> {
    const limit = this.config.maxServerRuns;
    if (!limit) return;
    const running = await this.db.prisma.conversation.count({
      where: { executionStatus: 'running', ...(conversationId ? { id: { not: conversationId } } : {}) },
    });
    // OpenHands' words (ConversationRunLimitExceeded).
    if (running >= limit) throw new TooManyRequests('Conversation run limit reached. Retry the request later.', limit, CONCURRENCY_RETRY_S);
  }

  /** Takes a socket slot of the caller's key for as long as the socket is open; false when all are taken. */
  async openSocket(p: Principal, ws: WebSocket): Promise<boolean> {
    const { maxSocketsPerKey: limit } = await this.limitsOf(p.tenantId);
    if (!limit) return true;
    const key = `sockets:${p.keyId}`;
    const member = randomUUID();
    if (!(await this.state.acquire(key, member, limit, SOCKET_SLOT_TTL_MS))) return false;
    let held = this.sockets.get(key);
    if (!held) this.sockets.set(key, (held = new Set()));
    held.add(member);
    ws.once('close', () => {
      held.delete(member);
      if (!held.size) this.sockets.delete(key);
      void this.state.release(key, member).catch(() => undefined);
    });
    return true;
  }

  private async renewSockets(): Promise<void> {
    for (const [key, members] of this.sockets) await this.state.renew(key, [...members], SOCKET_SLOT_TTL_MS).catch(() => undefined);
  }

  private liveSandboxes(tenantId: string): Promise<number> {
    return this.db.prisma.sandbox.count({ where: { tenantId, status: { in: LIVE_SANDBOX_STATUSES } } });
  }

  private sandboxLimit(limit: number): TooManyRequests {
    return new TooManyRequests(`Too many sandboxes: the limit is ${limit} starting or running at once`, limit, CONCURRENCY_RETRY_S);
  }
}
