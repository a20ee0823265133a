import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { EventBus } from '@berth/bus';
import { ExecutionStatus } from '@berth/contracts';
import { ConversationRepository } from '@berth/persistence';

/** Safety net: a change whose announcement was lost shows up after this long at most. */
const MAX_AGE_MS = 2000;
const MAX_TENANTS = 10_000;

/**
 * Conversation counts per tenant and status, kept in memory. Sidebars poll `count` constantly; a
 * query per poll costs more than the rest of the request. Every write that changes a count announces
 * it on the bus (all replicas drop that tenant's entries); a generation check keeps a count read
 * before a change from being stored after it.
 */
@Injectable()
export class ConversationCounter implements OnModuleDestroy {
  /** tenant → `status|sandbox` ('' = all) → count */
  private readonly cache = new Map<string, Map<string, { value: number; at: number }>>();
  private readonly generation = new Map<string, number>();
  private readonly stopListening: () => void;

  constructor(
    private readonly rows: ConversationRepository,
    private readonly bus: EventBus,
  ) {
    this.stopListening = bus.onTenantChange((tenantId) => this.drop(tenantId));
  }

  onModuleDestroy(): void {
    this.stopListening();
  }

  async count(tenantId: string, status?: ExecutionStatus, sandboxId?: string): Promise<number> {
    const key = `${status ?? ''}|${sandboxId ?? ''}`;
    const hit = this.cache.get(tenantId)?.get(key);
    if (hit && Date.now() - hit.at < MAX_AGE_MS) return hit.value;
    const generation = this.generation.get(tenantId) ?? 0;
    const value = await this.rows.count({ tenantId, sandboxId }, status);
    if ((this.generation.get(tenantId) ?? 0) === generation) {
      if (this.cache.size >= MAX_TENANTS) this.cache.clear();
      let perStatus = this.cache.get(tenantId);
      if (!perStatus) this.cache.set(tenantId, (perStatus = new Map()));
      perStatus.set(key, { value, at: Date.now() });
    }
    return value;
  }

  /** Call after a write that adds, removes or re-statuses a tenant's conversations has committed. */
  async changed(tenantId: string): Promise<void> {
    await this.bus.announceTenantChange(tenantId);
  }

  private drop(tenantId: string): void {
    this.generation.set(tenantId, (this.generation.get(tenantId) ?? 0) + 1);
    this.cache.delete(tenantId);
  }
}
