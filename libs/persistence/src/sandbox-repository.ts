import { randomUUID } from 'node:crypto';
import { Database, TRANSACTION_OPTIONS } from './database';
import { Prisma } from './generated/prisma/client';
import type { Sandbox as SandboxRow } from './generated/prisma/client';
import type { TenantScope } from './tenant-scope';

/** What the control plane wants of a sandbox (column `desired_state`). */
export type SandboxDesiredState = 'running' | 'stopped' | 'destroyed';

/** A change of a sandbox's state; fields left out stay as they are. */
export interface SandboxStateChange {
  desiredState?: SandboxDesiredState;
  /** the observed status */
  status?: string;
  /** why it is in that status (null: clears it) */
  statusReason?: string | null;
  url?: string;
  handle?: Prisma.InputJsonValue;
  /** the idle clock restarts */
  active?: boolean;
}

/** What `changeState` did: whether the change applied, and the row as it is now (null: gone). */
export interface SandboxStateResult {
  applied: boolean;
  row: SandboxRow | null;
}

/** What a sandbox was made for (column `kind`). */
export type SandboxKind = 'home' | 'conversation' | 'standalone';

export interface NewSandboxRow {
  /** An id the sandbox driver chose (the id its pooled executor was started for) — never one from a client. Default: random. */
  id?: string;
  driver: string;
  kind: SandboxKind;
  /** `none` or `egress` */
  network?: string;
  /** variable name → its value sealed by the caller (SandboxManager encrypts them) */
  env?: Record<string, { sealed: string }>;
  idleTimeoutSeconds?: number;
  ttlSeconds?: number | null;
}

export interface SandboxPageRequest {
  status?: string;
  /** id of the first sandbox of the page (unknown or another tenant's → from the start) */
  startId: string | null;
  limit: number;
}

/**
 * The `sandboxes` table, always seen through a tenant: another tenant's sandbox is not found. Ids
 * are random — made here, or by the sandbox driver (a fresh uuid it started a pooled executor for),
 * never taken from a client — so a new sandbox can never be an existing row of someone else (a
 * clash fails the insert). State changes are compare-and-set (`changeState`).
 */
export class SandboxRepository {
  constructor(private readonly db: Database) {}

  find(scope: TenantScope, id: string): Promise<SandboxRow | null> {
    return this.db.prisma.sandbox.findFirst({ where: { id, tenantId: scope.tenantId } });
  }

  /** The tenant's sandboxes among `ids` (another tenant's are left out). */
  findMany(scope: TenantScope, ids: string[]): Promise<SandboxRow[]> {
    return ids.length ? this.db.prisma.sandbox.findMany({ where: { id: { in: ids }, tenantId: scope.tenantId } }) : Promise.resolve([]);
  }

  async exists(scope: TenantScope, id: string): Promise<boolean> {
    return (await this.db.prisma.sandbox.count({ where: { id, tenantId: scope.tenantId } })) > 0;
  }

  /** Newest first, one row more than `limit` when more follow (keyset paging on created_at, id). */
  async page(scope: TenantScope, q: SandboxPageRequest): Promise<SandboxRow[]> {
    const where: Prisma.SandboxWhereInput = { tenantId: scope.tenantId, ...(q.status ? { status: q.status } : {}) };
    const start = q.startId ? await this.db.prisma.sandbox.findFirst({ where: { id: q.startId, tenantId: scope.tenantId }, select: { createdAt: true } }) : null;
    if (start && q.startId) where.OR = [{ createdAt: { lt: start.createdAt } }, { createdAt: start.createdAt, id: { lte: q.startId } }];
    return this.db.prisma.sandbox.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: q.limit + 1 });
  }

  /** A new row with a fresh random id (or the driver's), status `starting`. */
  create(scope: TenantScope, spec: NewSandboxRow, client: Prisma.TransactionClient = this.db.prisma): Promise<SandboxRow> {
    return client.sandbox.create({
      data: {
        id: spec.id ?? randomUUID(),
        tenantId: scope.tenantId,
        driver: spec.driver,
        kind: spec.kind,
        network: spec.network ?? null,
        status: 'starting',
        env: (spec.env ?? {}) as Prisma.InputJsonValue,
        ...(spec.idleTimeoutSeconds !== undefined ? { idleTimeoutSeconds: spec.idleTimeoutSeconds } : {}),
        ttlSeconds: spec.ttlSeconds ?? null,
      },
    });
  }

  /**
   * The tenant's network policy, from its quotas in one read: the network its sandboxes may have
   * (`none` or `egress`; null: the server default) and its egress allowlist (`egress_cidrs`: ranges
   * its `egress` sandboxes may reach beyond the outside).
   */
  async networkPolicy(scope: TenantScope): Promise<{ network: string | null; egressCidrs: string[] }> {
    const row = await this.db.prisma.tenant.findUnique({ where: { id: scope.tenantId }, select: { quotas: true } });
    const quotas = row?.quotas as { network?: unknown; egress_cidrs?: unknown } | undefined;
    const cidrs = quotas?.egress_cidrs;
    return {
      network: typeof quotas?.network === 'string' ? quotas.network : null,
      egressCidrs: Array.isArray(cidrs) ? cidrs.filter((c): c is string => typeof c === 'string') : [],
    };
  }

  /** The tenant's home sandbox, or null before its first use (or after it was deleted). */
  findHome(scope: TenantScope): Promise<SandboxRow | null> {
    return this.db.prisma.sandbox.findFirst({ where: { tenantId: scope.tenantId, kind: 'home' }, orderBy: { createdAt: 'asc' } });
  }

  /** The tenant's home, made if it has none (`spec`: its driver, network, id); concurrent first calls take turns on the tenant's row and make one. */
  async findOrCreateHome(scope: TenantScope, spec: () => Omit<NewSandboxRow, 'kind'>): Promise<SandboxRow> {
    return (
      (await this.findHome(scope)) ??
      this.db.prisma.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT 1 FROM "tenants" WHERE "id" = ${scope.tenantId}::uuid FOR UPDATE`;
        const existing = await tx.sandbox.findFirst({ where: { tenantId: scope.tenantId, kind: 'home' }, orderBy: { createdAt: 'asc' } });
        return existing ?? this.create(scope, { ...spec(), kind: 'home' }, tx);
      }, TRANSACTION_OPTIONS)
    );
  }

  /**
   * The one way a sandbox's state changes. `decide` sees the row as it is and returns the change
   * (or null: none is wanted); the write applies only while `state_version` is still the one seen
   * (compare-and-set) and bumps it. A lost compare-and-set re-reads the row and decides again — a
   * concurrent change is never overwritten. `seen`: the row the caller has just read.
   */
  async changeState(scope: TenantScope, id: string, decide: (row: SandboxRow) => SandboxStateChange | null, seen?: SandboxRow): Promise<SandboxStateResult> {
    let row = seen && seen.tenantId === scope.tenantId ? seen : await this.find(scope, id);
    for (; row; row = await this.find(scope, id)) {
      const change = decide(row);
      if (!change) return { applied: false, row };
      const now = new Date();
      const { active, ...columns } = change;
      const [written] = await this.db.prisma.sandbox.updateManyAndReturn({
        where: { id, tenantId: scope.tenantId, stateVersion: row.stateVersion },
        data: { ...columns, stateVersion: { increment: 1 }, updatedAt: now, ...(active ? { lastActivityAt: now } : {}) },
      });
      if (written) return { applied: true, row: written };
    }
    return { applied: false, row: null };
  }

  /** The row's state version (null: no such sandbox of the tenant): one indexed read, to tell whether any replica changed its state. */
  async stateVersionOf(scope: TenantScope, id: string): Promise<number | null> {
    const row = await this.db.prisma.sandbox.findFirst({ where: { id, tenantId: scope.tenantId }, select: { stateVersion: true } });
    return row?.stateVersion ?? null;
  }

  async touch(scope: TenantScope, id: string): Promise<void> {
    await this.db.prisma.sandbox.updateMany({ where: { id, tenantId: scope.tenantId }, data: { lastActivityAt: new Date() } });
  }

  /** Deletes the row (its bash events go with it; its conversations lose their sandbox); false when the tenant has none such. */
  async remove(scope: TenantScope, id: string): Promise<boolean> {
    const { count } = await this.db.prisma.sandbox.deleteMany({ where: { id, tenantId: scope.tenantId } });
    return count > 0;
  }

  /**
   * System level, for the reaper: one page (by id, after `afterId`) of the sandboxes of every tenant
   * that are due — running past their idle deadline (last activity + idle timeout), or past their
   * ttl deadline (creation + ttl) in any status. Selected in SQL (indexes on status and last
   * activity, on ttl and creation), so rows that are not due are never read.
   */
  async listForSweep(now: Date, limit: number, afterId: string | null = null): Promise<SandboxRow[]> {
    const due = await this.db.prisma.$queryRaw<{ id: string }[]>`
      SELECT "id" FROM "sandboxes"
       WHERE (("status" = 'running' AND "desired_state" = 'running' AND "last_activity_at" + "idle_timeout_seconds" * interval '1 second' <= ${now})
              OR ("ttl_seconds" IS NOT NULL AND "created_at" + "ttl_seconds" * interval '1 second' <= ${now}))
         AND "id" > ${afterId ?? '00000000-0000-0000-0000-000000000000'}::uuid
       ORDER BY "id" LIMIT ${limit}`;
    if (!due.length) return [];
    return this.db.prisma.sandbox.findMany({ where: { id: { in: due.map((r) => r.id) } }, orderBy: { id: 'asc' } });
  }

  /**
   * System level, for the reconciler: one page (by id, after `afterId`) of a driver's sandboxes that
   * may need it — observed running (is it still?), starting since before `startedBefore` (a start
   * interrupted?) or wanted destroyed (a delete to finish).
   */
  listForReconcile(driver: string, startedBefore: Date, limit: number, afterId: string | null = null): Promise<SandboxRow[]> {
    return this.db.prisma.sandbox.findMany({
      where: {
        driver,
        OR: [{ status: 'running' }, { status: 'starting', updatedAt: { lt: startedBefore } }, { desiredState: 'destroyed' }],
        ...(afterId ? { id: { gt: afterId } } : {}),
      },
      orderBy: { id: 'asc' },
      take: limit,
    });
  }

  /** System level, for the reconciler: the rows among `ids`, of whichever tenant. */
  findOfAnyTenant(ids: string[]): Promise<SandboxRow[]> {
    return ids.length ? this.db.prisma.sandbox.findMany({ where: { id: { in: ids } } }) : Promise.resolve([]);
  }

  /**
   * System level, for the event recorder's hook (the conversation id comes from an event the server
   * stored): the sandbox of that conversation counts as active.
   */
  async touchOfConversation(conversationId: string): Promise<void> {
    await this.db.prisma.$executeRaw`
      UPDATE "sandboxes" s SET "last_activity_at" = now()
        FROM "conversations" c
       WHERE c."id" = ${conversationId}::uuid AND s."id" = c."sandbox_id" AND s."tenant_id" = c."tenant_id"`;
  }
}
