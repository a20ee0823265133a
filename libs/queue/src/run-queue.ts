import { Logger } from '@nestjs/common';
import { Queue } from 'bullmq';

export const RUN_QUEUE_NAME = 'berth-runs';

export interface RunRequest {
  tenantId: string;
  conversationId: string;
}

/**
 * Where the gateway puts conversation runs for the workers. One pending job per conversation at a
 * time: a second request while one waits is folded into it.
 */
export abstract class RunQueue {
  abstract enqueue(run: RunRequest): Promise<void>;
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;
}

/** Embedded default: runs wait in memory for the in-process worker. */
export class InProcessRunQueue extends RunQueue {
  private readonly waiting = new Map<string, RunRequest>();
  private readonly consumers = new Set<(run: RunRequest) => void>();

  async enqueue(run: RunRequest): Promise<void> {
    this.waiting.set(run.conversationId, run);
    for (const consume of this.consumers) consume(run);
  }

  /** Runs waiting for a worker. */
  pending(): RunRequest[] {
    return [...this.waiting.values()];
  }

  /** Takes a waiting run out of the queue (the worker calls this when it starts it). */
  take(conversationId: string): RunRequest | undefined {
    const run = this.waiting.get(conversationId);
    this.waiting.delete(conversationId);
    return run;
  }

  onEnqueue(consumer: (run: RunRequest) => void): () => void {
    this.consumers.add(consumer);
    return () => void this.consumers.delete(consumer);
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.consumers.clear();
  }
}

export class BullRunQueue extends RunQueue {
  readonly queue: Queue;
  private readonly logger = new Logger('RunQueue');

  constructor(redisUrl: string, prefix = 'berth') {
    super();
    this.queue = new Queue(RUN_QUEUE_NAME, {
      connection: { url: redisUrl, maxRetriesPerRequest: null },
      prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000, attempts: 3, backoff: { type: 'exponential', delay: 1000 } },
    });
    this.queue.on('error', (err: Error) => this.logger.warn(`queue: ${err.message}`));
  }

  async enqueue(run: RunRequest): Promise<void> {
    // The job id makes a second enqueue for a conversation whose run still waits a no-op.
    await this.queue.add('run', run, { jobId: `run-${run.conversationId}` });
  }

  async ping(): Promise<void> {
    // A cheap read that needs a live Redis connection.
    await this.queue.getJobCountByTypes('waiting');
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
