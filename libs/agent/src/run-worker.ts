import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { ConversationRepository, Database, tenantScope } from '@berth/persistence';
import { InProcessRunQueue, RunLock, RunQueue, RunRequest } from '@berth/queue';
import { AgentRunner } from './agent-runner';

/** A second taker waits this much longer than a lease lives, so a dead holder's lease has lapsed. */
const LEASE_GRACE_MS = 2000;

/**
 * Takes runs from the queue (at most OH_MAX_CONCURRENT_RUNS at once) and runs each under the
 * conversation's lease, so a conversation never runs twice at once. A request that finds the lease
 * held by a live worker is dropped: that worker re-reads the conversation when it finishes.
 */
@Injectable()
export class RunWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('RunWorker');
  private stopping = false;

  constructor(
    private readonly queue: RunQueue,
    private readonly lock: RunLock,
    private readonly runner: AgentRunner,
    private readonly db: Database,
    private readonly conversations: ConversationRepository,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.db.ready;
    await this.queue.consume((run) => this.handle(run), this.config.maxConcurrentRuns);
    if (this.queue instanceof InProcessRunQueue) await this.resumeInterruptedRuns();
  }

  beforeApplicationShutdown(): void {
    this.stopping = true;
  }

  /**
   * The embedded default keeps its queue in memory: runs that were going when the process stopped
   * are queued again at start, and continue where their event log ends.
   */
  private async resumeInterruptedRuns(): Promise<void> {
    const running = await this.conversations.listRunningOfAllTenants();
    for (const c of running) await this.queue.enqueue({ tenantId: c.tenantId, conversationId: c.id });
    if (running.length) this.logger.log(`resuming ${running.length} run(s) interrupted by the last shutdown`);
  }

  async handle(run: RunRequest): Promise<void> {
    let waitMs = this.config.runStallMs + LEASE_GRACE_MS;
    while (!this.stopping) {
      const lease = await this.lock.acquire(run.conversationId, waitMs);
      if (!lease) return;
      try {
        await this.runner.run(run.tenantId, run.conversationId);
      } catch (err) {
        this.logger.error(`run of ${run.conversationId} failed: ${(err as Error).stack ?? err}`);
        throw err;
      } finally {
        await lease.release();
      }
      // Started again after the lease was let go (a message with run:true)? Take it, unless another worker did.
      const row = await this.conversations.find(tenantScope(run.tenantId), run.conversationId);
      if (row?.executionStatus !== 'running') return;
      waitMs = 0;
    }
  }
}
