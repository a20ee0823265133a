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

  /** a read under way, which requests arriving meanwhile share */
  private reading: Promise<number> | null = null;

  /**
   * The counter as of a read started at most one round trip ago: concurrent requests share one read
   * (a request per read cost a third of the gateway's CPU under load), and a change committed before
   * a request arrived is always seen.
   */
  current(): Promise<number> {
    this.reading ??= this.state.version(KEY).finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  async bump(): Promise<void> {
    await this.state.bump(KEY);
  }
}
