import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { ConversationRepository, Database, tenantScope } from '@berth/persistence';
import { runsInFlight } from '@berth/metrics';
import { RunLock, RunQueue, RunRequest } from '@berth/queue';
import { SandboxManager } from '@berth/sandbox';
import { AgentRunner } from './agent-runner';

/** A second taker waits this much longer than a lease lives, so a dead holder's lease has lapsed. */
const LEASE_GRACE_MS = 2000;
/** A stopping worker lets the steps in flight end this long; then they are cut short (the next owner says so). */
const STEP_GRACE_MS = 20_000;

/**
 * Takes runs from the queue (at most OH_MAX_CONCURRENT_RUNS at once) and runs each under the
 * conversation's lease and a fresh fence, so a conversation never runs twice at once. A request that
 * finds the lease held by a live worker is dropped: that worker re-reads the conversation when it
 * finishes. On stop it takes no more runs, lets each step in flight end, and hands its runs over.
 */
@Injectable()
export class RunWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('RunWorker');
  private readonly stopping = new AbortController();
  /** aborted when the steps in flight outlived STEP_GRACE_MS at stop */
  private readonly cutShort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly queue: RunQueue,
    private readonly lock: RunLock,
    private readonly runner: AgentRunner,
    private readonly db: Database,
    private readonly conversations: ConversationRepository,
    private readonly sandboxes: SandboxManager,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.db.ready;
    await this.queue.consume((run) => this.track(this.handle(run)), this.config.maxConcurrentRuns);
  }

  /** Before the sandbox driver and the queue close (onApplicationShutdown): the runs in flight still use them. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping.abort();
    await this.queue.stopTaking().catch((err: Error) => this.logger.warn(`could not stop taking runs: ${err.message}`));
    if (!this.inFlight.size) return;
    this.logger.log(`stopping: ${this.inFlight.size} run(s) end their step and are handed over`);
    const cut = setTimeout(() => this.cutShort.abort(new Error('the worker stopped before the step ended')), STEP_GRACE_MS);
    await Promise.allSettled([...this.inFlight]);
    clearTimeout(cut);
  }

  private track(work: Promise<void>): Promise<void> {
    this.inFlight.add(work);
    runsInFlight.inc();
    return work.finally(() => {
      this.inFlight.delete(work);
      runsInFlight.dec();
    });
  }

  async handle(run: RunRequest): Promise<void> {
    let waitMs = this.config.runStallMs + LEASE_GRACE_MS;
    while (!this.stopping.signal.aborted) {
      // A stopping worker waits for no lease: the run is another worker's, or queued again.
      const lease = await this.lock.acquire(run.conversationId, waitMs, this.stopping.signal);
      if (!lease) return;
      // The run's lines (README "Logs"): its fence tells one take of the conversation from the next.
      let fields: Record<string, unknown> = { conversation_id: run.conversationId, tenant_id: run.tenantId };
      try {
        const fence = await this.conversations.takeRun(run.conversationId);
        if (fence === null) return;
        fields = { ...fields, run_fence: fence };
        this.logger.log({ msg: 'run started', ...fields });
        await this.runner.run(run.tenantId, run.conversationId, {
          fence,
          lost: AbortSignal.any([lease.lost, this.cutShort.signal]),
          stopping: this.stopping.signal,
        });
      } catch (err) {
        this.logger.error({ msg: 'run failed', ...fields, err });
        throw err;
      } finally {
        await lease.release().catch((err: Error) => this.logger.warn(`could not release the lease of ${run.conversationId}: ${err.message}`));
      }
      // Lost: another worker holds the run, or the reconciler queues it again.
      if (lease.lost.aborted) {
        this.logger.log({ msg: 'run ended: its lease was lost', ...fields });
        return;
      }
      // Started again after the lease was let go (a message with run:true), or left for the next worker at stop?
      const row = await this.conversations.find(tenantScope(run.tenantId), run.conversationId);
      this.logger.log({ msg: 'run ended', ...fields, status: row?.executionStatus ?? 'deleted' });
      if (row?.executionStatus !== 'running') return;
      if (this.stopping.signal.aborted) {
        // Its lease is free: another worker takes it at once (else the reconciler queues it again), in the same sandbox.
        if (row.sandboxId) this.sandboxes.handedOver.add(row.sandboxId);
        await this.queue.enqueue(run).catch((err: Error) => this.logger.warn(`could not hand over ${run.conversationId}: ${err.message}`));
        return;
      }
      waitMs = 0;
    }
  }
}
