import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { ConversationRepository, Database } from '@berth/persistence';
import { LeasedLoop, RunLock, RunQueue } from '@berth/queue';
import type { RunLease } from '@berth/queue';

/** The reconciler's own lease (no conversation has this id): one sweep at a time across workers. */
const RECONCILER_LEASE = 'reconciler';
const MIN_INTERVAL_MS = 1000;

/**
 * A `running` conversation is the durable intent of a run, written in the same statement as the
 * status change. Every worker sweeps periodically (one at a time, under a lease) and queues again
 * each running conversation no live worker holds: its job was lost (Redis restarted without its
 * data), exhausted its retries (PostgreSQL down), or was never queued (a crash or an outage between
 * the commit and the enqueue). The first sweep at start resumes the runs an embedded server left.
 */
@Injectable()
export class RunReconciler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('RunReconciler');
  private readonly loop: LeasedLoop;

  constructor(
    private readonly queue: RunQueue,
    private readonly lock: RunLock,
    private readonly db: Database,
    private readonly conversations: ConversationRepository,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {
    this.loop = new LeasedLoop(lock, RECONCILER_LEASE, this.logger);
  }

  private get intervalMs(): number {
    return Math.max(MIN_INTERVAL_MS, this.config.runStallMs);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.db.ready;
    this.loop.every(this.intervalMs, (lease) => this.requeue(lease), 0);
  }

  /** Before the queue closes: a sweep under way ends first. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  /** Queues the running conversations nobody holds; how many it queued (0 when another worker sweeps). */
  async sweepOnce(): Promise<number> {
    return (await this.loop.once((lease) => this.requeue(lease))) ?? 0;
  }

  private async requeue(lease: RunLease): Promise<number> {
    let queued = 0;
    for (const c of await this.conversations.listRunningOfAllTenants()) {
      if (lease.lost.aborted || this.loop.isStopped) break;
      if (await this.lock.isHeld(c.id)) continue;
      await this.queue.enqueue({ tenantId: c.tenantId, conversationId: c.id }, { once: true });
      queued++;
    }
    if (queued) this.logger.log(`queued ${queued} running conversation(s) that no worker held`);
    return queued;
  }
}
