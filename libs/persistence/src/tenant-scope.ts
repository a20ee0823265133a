/**
 * Whose data a query may touch. Every method of the repositories takes one first, so a query
 * without a tenant does not compile; the gateway's Principal is one. `sandboxId` (set under
 * `/sandboxes/{id}/…`) narrows conversations to that sandbox's.
 */
export interface TenantScope {
  readonly tenantId: string;
  readonly sandboxId?: string;
}

/** The scope of a tenant's own background work (a queued run, a sweep), whose tenant comes from a stored row. */
export const tenantScope = (tenantId: string): TenantScope => ({ tenantId });
