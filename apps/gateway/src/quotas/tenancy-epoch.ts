import { Injectable } from '@nestjs/common';
import { SharedState } from './shared-state';

const KEY = 'tenancy-epoch';

/**
 * A counter every replica reads before trusting what it cached about keys and tenants. Revoking a
 * key, deleting a tenant or changing its quotas bumps it once the change is committed, so the next
 * request anywhere finds its cache stale and reads the database: effective at once, no pub/sub race.
 */
@Injectable()
export class TenancyEpoch {
  constructor(private readonly state: SharedState) {}

  current(): Promise<number> {
    return this.state.version(KEY);
  }

  async bump(): Promise<void> {
    await this.state.bump(KEY);
  }
}
