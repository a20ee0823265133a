import { Logger } from '@nestjs/common';
import type { QueueDepth } from '@berth/metrics';
import { Queue, Worker } from 'bullmq';

export const RUN_QUEUE_NAME = 'berth-runs';

export interface RunRequest {
  tenantId: string;
  conversationId: string;
}

export type RunHandler = (run: RunRequest) => Promise<void>;

/** Ties a stall to the checks that notice it: BullMQ looks for stalled jobs this many times per stall time. */
const STALL_CHECKS_PER_STALL = 10;

/**
 * Where the gateway puts conversation runs and workers take them. A run request is a wake-up call:
 * the worker holding the conversation's RunLock does the work, so duplicates are harmless.
 */
export abstract class RunQueue {
  /**
   * `once`: the reconciler's wake-up, queued only when no other one for the conversation waits (so a
   * backlog of waiting runs is not multiplied at each sweep).
   */
  abstract enqueue(run: RunRequest, options?: { once?: boolean }): Promise<void>;
  /** Starts taking runs, at most `concurrency` at once in this process. */
  abstract consume(handler: RunHandler, concurrency: number): Promise<void>;
  /** Takes no more runs (a worker stopping); the ones in progress go on. */
  abstract stopTaking(): Promise<void>;
  abstract ping(): Promise<void>;
  /** Runs waiting for a worker and runs being worked on (of every process, with Redis). */
  abstract depth(): Promise<QueueDepth>;
  /** Stops taking runs; runs in progress are left to finish (or to be taken over). */
  abstract close(): Promise<void>;
}

/** Embedded default: runs wait in memory for the in-process worker. */
export class InProcessRunQueue extends RunQueue {
  /** waiting runs, one per conversation (a second request while one waits adds nothing) */
  private readonly waiting = new Map<string, RunRequest>();
  private handler?: RunHandler;
  private concurrency = 0;
  private active = 0;
  private closed = false;

  async enqueue(run: RunRequest): Promise<void> {
    this.waiting.set(run.conversationId, run);
    this.dispatch();
  }

  async consume(handler: RunHandler, concurrency: number): Promise<void> {
    this.handler = handler;
    this.concurrency = concurrency;
    this.dispatch();
  }

  /** Runs waiting for a worker. */
  pending(): RunRequest[] {
    return [...this.waiting.values()];
  }

  private dispatch(): void {
    while (!this.closed && this.handler && this.active < this.concurrency && this.waiting.size) {
      const [conversationId, run] = this.waiting.entries().next().value as [string, RunRequest];
      this.waiting.delete(conversationId);
      this.active++;
      const handler = this.handler;
      void handler(run)
        .catch(() => undefined)
        .finally(() => {
          this.active--;
          this.dispatch();
        });
    }
  }

  async stopTaking(): Promise<void> {
    this.closed = true;
  }

  async ping(): Promise<void> {}

  async depth(): Promise<QueueDepth> {
    return { waiting: this.waiting.size, active: this.active };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export class BullRunQueue extends RunQueue {
  readonly queue: Queue;
  private worker?: Worker;
  private readonly logger = new Logger('RunQueue');

  /**
   * `stallMs`: how long a worker may go silent (killed, frozen) before BullMQ hands its runs to
   * another worker — the job lock's duration. Stalled jobs are looked for ten times as often, so a
   * run is handed over within about 1.1 × `stallMs` (a check as rare as the lock's duration made
   * it 2–3 × `stallMs`).
   */
  constructor(
    private readonly redisUrl: string,
    private readonly prefix = 'berth',
    private readonly stallMs = 30_000,
  ) {
    super();
    this.queue = new Queue(RUN_QUEUE_NAME, {
      connection: { url: redisUrl, maxRetriesPerRequest: null },
      prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000, attempts: 5, backoff: { type: 'exponential', delay: 1000 } },
    });
    this.queue.on('error', (err: Error) => this.logger.warn(`queue: ${err.message}`));
  }

  async enqueue(run: RunRequest, options: { once?: boolean } = {}): Promise<void> {
    if (!options.once) {
      await this.queue.add('run', run);
      return;
    }
    // A fixed id makes BullMQ ignore the wake-up while one waits; it is removed once taken or failed.
    await this.queue.add('run', run, { jobId: `reconcile-${run.conversationId}`, removeOnComplete: true, removeOnFail: true });
  }

  async consume(handler: RunHandler, concurrency: number): Promise<void> {
    this.worker = new Worker(RUN_QUEUE_NAME, async (job) => handler(job.data as RunRequest), {
      connection: { url: this.redisUrl, maxRetriesPerRequest: null },
      prefix: this.prefix,
      concurrency,
      lockDuration: this.stallMs,
      stalledInterval: Math.max(100, Math.round(this.stallMs / STALL_CHECKS_PER_STALL)),
      // A run may outlive several worker crashes; it is never abandoned for having stalled.
      maxStalledCount: 1000,
    });
    this.worker.on('error', (err: Error) => this.logger.warn(`worker: ${err.message}`));
    await this.worker.waitUntilReady();
  }

  async stopTaking(): Promise<void> {
    await this.worker?.pause(true);
  }

  async ping(): Promise<void> {
    // A cheap read that needs a live Redis connection.
    await this.queue.getJobCountByTypes('waiting');
  }

  async depth(): Promise<QueueDepth> {
    // Delayed jobs are retries waiting out their backoff: they wait as much as the others.
    const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
    return { waiting: counts.waiting + counts.prioritized + counts.delayed, active: counts.active };
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }
}
