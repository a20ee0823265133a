import { STATUS_TRANSITIONS, StatusTransitionName } from '@berth/contracts';
import { Database, TRANSACTION_OPTIONS } from './database';
import { Prisma } from './generated/prisma/client';
import type { Conversation as ConversationRow } from './generated/prisma/client';
import type { TenantScope } from './tenant-scope';

export type NewConversation = Omit<Prisma.ConversationUncheckedCreateInput, 'tenantId' | 'events' | 'webhookCursors'>;
export type ConversationChange = Prisma.ConversationUpdateManyMutationInput;
/** A conversation without its stats (ConversationRepository.findForRun). */
export type ConversationRunRow = Omit<ConversationRow, 'stats'>;

export interface ConversationPageRequest {
  status?: string;
  field: 'createdAt' | 'updatedAt';
  dir: 'asc' | 'desc';
  /** id of the first conversation of the page (unknown or another tenant's → from the start) */
  startId: string | null;
  limit: number;
}

/** One LLM call for ConversationRepository.addUsage, in OpenHands' Metrics shapes (see @berth/agent's llmCallUsage). */
export interface LlmCallUsage {
  usageId: string;
  /** the usage id's metrics before its first call */
  zero: Record<string, unknown>;
  cost: number;
  cost_entry: Record<string, unknown>;
  latency_entry: Record<string, unknown>;
  /** this call's TokenUsage */
  turn: Record<string, unknown> & { prompt_tokens: number; completion_tokens: number; cache_read_tokens: number; reasoning_tokens: number };
}

/** A write of a run's loop found the run taken by another owner (its fence moved on). */
export class RunFenceLost extends Error {
  constructor(conversationId: string) {
    super(`the run of ${conversationId} was taken over by another worker`);
  }
}

/**
 * The `conversations` table, always seen through a tenant (and, under `/sandboxes/{id}`, one of its
 * sandboxes): another tenant's conversation is not found, not refused. Status changes are
 * compare-and-set and say whether they applied.
 */
export class ConversationRepository {
  constructor(
    private readonly db: Database,
    private readonly client: Prisma.TransactionClient = db.prisma,
  ) {}

  private where(scope: TenantScope, extra: Prisma.ConversationWhereInput = {}): Prisma.ConversationWhereInput {
    return { ...extra, tenantId: scope.tenantId, ...(scope.sandboxId ? { sandboxId: scope.sandboxId } : {}) };
  }

  find(scope: TenantScope, id: string): Promise<ConversationRow | null> {
    return this.client.conversation.findFirst({ where: this.where(scope, { id }) });
  }

  /** The row as a run reads it at every step: without `stats`, whose per-call lists grow with the conversation. */
  findForRun(scope: TenantScope, id: string): Promise<ConversationRunRow | null> {
    return this.client.conversation.findFirst({ where: this.where(scope, { id }), omit: { stats: true } });
  }

  findMany(scope: TenantScope, ids: string[]): Promise<ConversationRow[]> {
    return this.client.conversation.findMany({ where: this.where(scope, { id: { in: ids } }) });
  }

  /** A page in (sort column, id) order, one row more than `limit` when more follow (keyset paging). */
  async page(scope: TenantScope, q: ConversationPageRequest): Promise<ConversationRow[]> {
    const where = this.where(scope, q.status ? { executionStatus: q.status } : {});
    const start = q.startId ? await this.client.conversation.findFirst({ where: this.where(scope, { id: q.startId }), select: { createdAt: true, updatedAt: true } }) : null;
    if (start && q.startId) {
      const v = start[q.field];
      where.OR = [
        { [q.field]: q.dir === 'desc' ? { lt: v } : { gt: v } },
        { [q.field]: v, id: q.dir === 'desc' ? { lte: q.startId } : { gte: q.startId } },
      ];
    }
    return this.client.conversation.findMany({ where, orderBy: [{ [q.field]: q.dir }, { id: q.dir }], take: q.limit + 1 });
  }

  count(scope: TenantScope, status?: string): Promise<number> {
    return this.client.conversation.count({ where: this.where(scope, status ? { executionStatus: status } : {}) });
  }

  /** The tenant's conversations in one of its sandboxes (with that status). */
  countInSandbox(scope: TenantScope, sandboxId: string, status?: string): Promise<number> {
    return this.client.conversation.count({ where: { tenantId: scope.tenantId, sandboxId, ...(status ? { executionStatus: status } : {}) } });
  }

  /**
   * Creates the conversation and runs `within` in the same transaction (its first events), all or
   * nothing. A sandbox named in `data` must be the tenant's.
   */
  async create<T>(scope: TenantScope, data: NewConversation, within: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    return this.db.prisma.$transaction(async (tx) => {
      if (data.sandboxId && !(await tx.sandbox.findFirst({ where: { id: data.sandboxId, tenantId: scope.tenantId }, select: { id: true } }))) {
        throw new Error(`sandbox ${data.sandboxId} is not the tenant's`);
      }
      await tx.conversation.create({ data: { ...data, tenantId: scope.tenantId } });
      return within(tx);
    }, TRANSACTION_OPTIONS);
  }

  /**
   * False when the tenant has no such conversation. With `fence` (a run's loop), the change applies
   * only while that run still owns the conversation, else RunFenceLost.
   */
  async update(scope: TenantScope, id: string, data: ConversationChange, fence?: number): Promise<boolean> {
    const { count } = await this.client.conversation.updateMany({ where: this.where(scope, { id, ...(fence === undefined ? {} : { runFence: fence }) }), data });
    if (!count && fence !== undefined) await this.checkFence(id, fence);
    return count > 0;
  }

  /**
   * One transition of the execution-status state machine (with other columns), as a compare-and-set:
   * true when the status was in one the transition starts from, and moved. With `fence`, only while
   * that run owns the conversation (else RunFenceLost).
   */
  async setStatus(scope: TenantScope, id: string, transition: StatusTransitionName, data: ConversationChange = {}, fence?: number): Promise<boolean> {
    const { from, to } = STATUS_TRANSITIONS[transition];
    const { count } = await this.client.conversation.updateMany({
      where: this.where(scope, { id, executionStatus: { in: [...from] }, ...(fence === undefined ? {} : { runFence: fence }) }),
      data: { ...data, executionStatus: to },
    });
    if (!count && fence !== undefined) await this.checkFence(id, fence);
    return count > 0;
  }

  /**
   * Makes the caller the run's owner: bumps the fence and returns it. Writes of an earlier owner
   * carrying the old fence fail from now on. Null when the conversation is gone.
   */
  async takeRun(id: string): Promise<number | null> {
    const rows = await this.client.$queryRaw<{ run_fence: number }[]>`
      UPDATE "conversations" SET "run_fence" = "run_fence" + 1 WHERE "id" = ${id}::uuid RETURNING "run_fence"`;
    return rows.length ? Number(rows[0].run_fence) : null;
  }

  /** Throws RunFenceLost when the run's fence is no longer `fence` (a gone conversation is left to the caller). */
  async checkFence(id: string, fence: number): Promise<void> {
    const row = await this.client.conversation.findUnique({ where: { id }, select: { runFence: true } });
    if (row && row.runFence !== fence) throw new RunFenceLost(id);
  }

  /**
   * Read-modify-write under a row lock (merging secrets, adding usage): concurrent changes take
   * turns. Null when the tenant has no such conversation; with `fence`, RunFenceLost once another
   * run owns it.
   */
  async modify(scope: TenantScope, id: string, change: (row: ConversationRow) => ConversationChange, fence?: number): Promise<ConversationRow | null> {
    return this.db.prisma.$transaction(async (tx) => {
      const locked = await tx.$queryRaw<{ id: string; run_fence: number }[]>`
        SELECT "id"::text AS "id", "run_fence" FROM "conversations" WHERE "id" = ${id}::uuid AND "tenant_id" = ${scope.tenantId}::uuid FOR UPDATE`;
      if (!locked.length) return null;
      if (fence !== undefined && Number(locked[0].run_fence) !== fence) throw new RunFenceLost(id);
      const row = await tx.conversation.findFirst({ where: this.where(scope, { id }) });
      if (!row) return null;
      return tx.conversation.update({ where: { id }, data: change(row) });
    }, TRANSACTION_OPTIONS);
  }

  /**
   * Counts one LLM call in the conversation's stats, in the database: the usage id's accumulated
   * cost and tokens grow, its per-call lists (costs, response_latencies, token_usages) get one entry
   * each, and only the compact snapshot (without those lists) comes back — the lists grow with the
   * conversation, so no caller reads or rewrites them. Null when the tenant has no such conversation;
   * with `fence`, RunFenceLost once another run owns it.
   */
  async addUsage(scope: TenantScope, id: string, call: LlmCallUsage, fence?: number): Promise<{ usage_to_metrics: Record<string, unknown> } | null> {
    const turn = JSON.stringify(call.turn);
    const rows = await this.client.$queryRaw<{ snapshot: Record<string, unknown> | null }[]>`
      WITH "current" AS (
        SELECT "id", "stats"::jsonb AS "stats", COALESCE("stats"::jsonb -> 'usage_to_metrics' -> ${call.usageId}, ${JSON.stringify(call.zero)}::jsonb) AS "m"
          FROM "conversations"
         WHERE "id" = ${id}::uuid AND "tenant_id" = ${scope.tenantId}::uuid AND (${fence ?? null}::int IS NULL OR "run_fence" = ${fence ?? null}::int)
           FOR UPDATE
      ), "next" AS (
        SELECT "id", "stats", "m" || jsonb_build_object(
          'accumulated_cost', COALESCE(("m" ->> 'accumulated_cost')::float8, 0) + ${call.cost}::float8,
          'accumulated_token_usage', ("m" -> 'accumulated_token_usage') || jsonb_build_object(
            'prompt_tokens', COALESCE(("m" -> 'accumulated_token_usage' ->> 'prompt_tokens')::bigint, 0) + (${turn}::jsonb ->> 'prompt_tokens')::bigint,
            'completion_tokens', COALESCE(("m" -> 'accumulated_token_usage' ->> 'completion_tokens')::bigint, 0) + (${turn}::jsonb ->> 'completion_tokens')::bigint,
            'cache_read_tokens', COALESCE(("m" -> 'accumulated_token_usage' ->> 'cache_read_tokens')::bigint, 0) + (${turn}::jsonb ->> 'cache_read_tokens')::bigint,
            'reasoning_tokens', COALESCE(("m" -> 'accumulated_token_usage' ->> 'reasoning_tokens')::bigint, 0) + (${turn}::jsonb ->> 'reasoning_tokens')::bigint,
            'per_turn_token', ${turn}::jsonb -> 'per_turn_token',
            'response_id', ${turn}::jsonb -> 'response_id'),
          'costs', COALESCE("m" -> 'costs', '[]'::jsonb) || jsonb_build_array(${JSON.stringify(call.cost_entry)}::jsonb),
          'response_latencies', COALESCE("m" -> 'response_latencies', '[]'::jsonb) || jsonb_build_array(${JSON.stringify(call.latency_entry)}::jsonb),
          'token_usages', COALESCE("m" -> 'token_usages', '[]'::jsonb) || jsonb_build_array(${turn}::jsonb)) AS "m"
          FROM "current"
      )
      , "merged" AS (
        SELECT "id", jsonb_set(
                 jsonb_set(COALESCE("stats", '{}'::jsonb), '{usage_to_metrics}', COALESCE("stats" -> 'usage_to_metrics', '{}'::jsonb), true),
                 ARRAY['usage_to_metrics', ${call.usageId}], "m", true) AS "stats"
          FROM "next"
      )
      UPDATE "conversations" AS "c"
         SET "stats" = "merged"."stats"::json
        FROM "merged"
       WHERE "c"."id" = "merged"."id"
      RETURNING (SELECT jsonb_object_agg("k", "v" - 'costs' - 'response_latencies' - 'token_usages') FROM jsonb_each("merged"."stats" -> 'usage_to_metrics') AS "e"("k", "v")) AS "snapshot"`;
    if (!rows.length) {
      if (fence !== undefined) await this.checkFence(id, fence);
      return null;
    }
    return { usage_to_metrics: rows[0].snapshot ?? {} };
  }

  /** Gives a conversation without a sandbox the tenant's sandbox `sandboxId`; false when it has one already. */
  async attachSandbox(scope: TenantScope, id: string, sandboxId: string): Promise<boolean> {
    const attached = await this.client.$executeRaw`
      UPDATE "conversations" SET "sandbox_id" = ${sandboxId}::uuid
       WHERE "id" = ${id}::uuid AND "tenant_id" = ${scope.tenantId}::uuid AND "sandbox_id" IS NULL
         AND EXISTS (SELECT 1 FROM "sandboxes" WHERE "id" = ${sandboxId}::uuid AND "tenant_id" = ${scope.tenantId}::uuid)`;
    return attached > 0;
  }

  /** Deletes the conversation (its events go with it); the row as it was, or null when the tenant has none such. */
  async remove(scope: TenantScope, id: string): Promise<ConversationRow | null> {
    const row = await this.find(scope, id);
    if (!row) return null;
    const { count } = await this.client.conversation.deleteMany({ where: this.where(scope, { id }) });
    return count ? row : null;
  }

  /** The tenant's conversation with the deepest working dir among `dirs` (the newest on a tie). */
  async withWorkingDirIn(scope: TenantScope, dirs: string[]): Promise<{ id: string; sandboxId: string | null; workingDir: string } | null> {
    const rows = await this.client.$queryRaw<{ id: string; sandbox_id: string | null; working_dir: string }[]>`
      SELECT "id"::text AS "id", "sandbox_id"::text AS "sandbox_id", "workspace"->>'working_dir' AS "working_dir"
        FROM "conversations"
       WHERE "tenant_id" = ${scope.tenantId}::uuid AND ("workspace"->>'working_dir') = ANY(${dirs}::text[])
         AND (${scope.sandboxId ?? null}::uuid IS NULL OR "sandbox_id" = ${scope.sandboxId ?? null}::uuid)
       ORDER BY length("workspace"->>'working_dir') DESC, "updated_at" DESC
       LIMIT 1`;
    return rows[0] ? { id: rows[0].id, sandboxId: rows[0].sandbox_id, workingDir: rows[0].working_dir } : null;
  }

  /**
   * System level, for the title sweep: conversations of every tenant changed since `since` that
   * have had a user message and still have no title.
   */
  listUntitledOfAllTenants(since: Date, limit: number): Promise<ConversationRow[]> {
    return this.db.prisma.conversation.findMany({ where: { title: null, lastUserMessageId: { not: null }, updatedAt: { gte: since } }, orderBy: { updatedAt: 'desc' }, take: limit });
  }

  /** System level, for the reconciler: conversations of every tenant marked running. */
  listRunningOfAllTenants(): Promise<{ id: string; tenantId: string }[]> {
    return this.db.prisma.conversation.findMany({ where: { executionStatus: 'running' }, select: { id: true, tenantId: true } });
  }
}
