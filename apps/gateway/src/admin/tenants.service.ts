import { ConflictException, Inject, Injectable, Logger, NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import { BERTH_CONFIG, DEFAULT_CLUSTER_CIDRS } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { cidrsOverlap, parseUuid, QUOTA_FIELDS, utcTimestamp } from '@berth/contracts';
import type { TenantQuotas } from '@berth/contracts';
import { Database, DEFAULT_TENANT_ID, Prisma, tenantScope } from '@berth/persistence';
import { SandboxManager } from '@berth/sandbox';
import { randomUUID } from 'node:crypto';
import { effectiveLimits, effectiveNetwork } from '../quotas/quota.service';
import { TenancyEpoch } from '../quotas/tenancy-epoch';
import { fromStart, NEWEST_FIRST, pageOf } from './paging';

const ROW_NOT_UNIQUE = 'P2002';

type TenantRow = { id: string; name: string; quotas: Prisma.JsonValue; createdAt: Date };

export const tenantNotFound = (id: string) => new NotFoundException({ detail: `Tenant not found: ${id}` });

/** Only the set fields are kept: a null in a patch resets the field to the server default. */
function storedQuotas(current: TenantQuotas, patch: TenantQuotas = {}): Record<string, number | string | string[]> {
  const merged: Record<string, number | string | string[]> = {};
  for (const field of QUOTA_FIELDS) {
    const value = field in patch ? patch[field] : current[field];
    if (typeof value === 'number' || typeof value === 'string' || Array.isArray(value)) merged[field] = value;
  }
  return merged;
}

/** Tenants as an admin manages them: create, list, rename, set quotas, delete with everything they own. */
@Injectable()
export class TenantsService {
  private readonly logger = new Logger('Tenants');

  constructor(
    private readonly db: Database,
    private readonly sandboxes: SandboxManager,
    private readonly epoch: TenancyEpoch,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  info(row: TenantRow) {
    const quotas = row.quotas as TenantQuotas;
    const limits = effectiveLimits(row.id, this.config.tenantLimits, quotas);
    return {
      id: row.id,
      name: row.name,
      quotas: Object.fromEntries(QUOTA_FIELDS.map((f) => [f, quotas[f] ?? null])),
      effective_quotas: {
        max_sandboxes: limits.maxSandboxes,
        max_running_conversations: limits.maxRunningConversations,
        requests_per_minute: limits.requestsPerMinute,
        max_sockets_per_key: limits.maxSocketsPerKey,
        network: effectiveNetwork(this.config.sandboxNetwork, quotas),
        egress_cidrs: quotas.egress_cidrs ?? [],
      },
      created_at: utcTimestamp(row.createdAt),
    };
  }

  async require(id: string): Promise<TenantRow> {
    const row = await this.db.prisma.tenant.findUnique({ where: { id } });
    if (!row) throw tenantNotFound(id);
    return row;
  }

  /** An allowlist may open the outside further, never the cluster's own ranges (its pods and services). */
  private checkEgressCidrs(quotas: TenantQuotas = {}): void {
    const clusterCidrs = this.config.kubernetes?.clusterCidrs ?? DEFAULT_CLUSTER_CIDRS;
    for (const cidr of quotas.egress_cidrs ?? []) {
      const range = clusterCidrs.find((cluster) => cidrsOverlap(cidr, cluster));
      if (range) throw new UnprocessableEntityException({ detail: `quotas.egress_cidrs: ${cidr} overlaps the cluster range ${range}, which sandboxes never reach` });
    }
  }

  async create(req: { name: string; quotas: TenantQuotas }): Promise<TenantRow> {
    this.checkEgressCidrs(req.quotas);
    return this.uniqueName(req.name, () =>
      this.db.prisma.tenant.create({ data: { id: randomUUID(), name: req.name, quotas: storedQuotas({}, req.quotas) } }),
    );
  }

  async list(q: { page_id?: string; limit: number }) {
    const startId = q.page_id ? parseUuid(q.page_id) : null;
    const start = startId ? await this.db.prisma.tenant.findUnique({ where: { id: startId }, select: { id: true, createdAt: true } }) : null;
    const rows = await this.db.prisma.tenant.findMany({ where: fromStart(start), orderBy: NEWEST_FIRST, take: q.limit + 1 });
    return pageOf(rows, q.limit);
  }

  async update(id: string, patch: { name?: string; quotas?: TenantQuotas }): Promise<TenantRow> {
    this.checkEgressCidrs(patch.quotas);
    const current = await this.require(id);
    const row = await this.uniqueName(patch.name ?? current.name, () =>
      this.db.prisma.tenant.update({
        where: { id },
        data: { ...(patch.name !== undefined ? { name: patch.name } : {}), quotas: storedQuotas(current.quotas as TenantQuotas, patch.quotas) },
      }),
    );
    // Every replica's cached limits drop.
    await this.epoch.bump();
    return row;
  }

  /**
   * Deletes the tenant: its keys first (refused from the next request on, on every replica), then its
   * sandboxes through the driver (executors stopped, folders removed), then its rows (they cascade).
   * The default tenant owns the OH_SESSION_API_KEYS_* keys and open mode: it cannot be deleted.
   */
  async remove(id: string): Promise<void> {
    if (id === DEFAULT_TENANT_ID) throw new ConflictException({ detail: 'The default tenant cannot be deleted' });
    await this.require(id);
    await this.db.prisma.apiKey.deleteMany({ where: { tenantId: id } });
    await this.epoch.bump();
    for (const sandbox of await this.db.prisma.sandbox.findMany({ where: { tenantId: id } })) {
      await this.sandboxes.destroy(tenantScope(id), sandbox).catch((err: Error) => this.logger.error(`could not destroy sandbox ${sandbox.id} of tenant ${id}: ${err.message}`));
    }
    await this.db.prisma.tenant.deleteMany({ where: { id } });
    await this.epoch.bump();
  }

  private async uniqueName<T>(name: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if ((err as { code?: string }).code === ROW_NOT_UNIQUE) throw new ConflictException({ detail: `A tenant named ${JSON.stringify(name)} exists already` });
      throw err;
    }
  }
}
