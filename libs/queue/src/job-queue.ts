import { Logger } from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import { REQUEST_PATH_REDIS } from '@berth/bus';

export interface JobOptions {
  /** at most one job with this id waits or runs at a time; adding another is a no-op */
  jobId?: string;
  delayMs?: number;
  /** total tries, the first included */
  attempts: number;
}

/** Thrown by a handler that failed in a way worth retrying; `retryAfterMs` overrides the backoff. */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface ConsumeOptions<T> {
  concurrency: number;
  /** delay before retry number `retry` (1 = the first retry) of the job `data` after `error` */
  backoffMs(retry: number, error: Error, data: T): number;
  /** A job whose process died runs again after about this long (BullMQ's lock; 30 s unless set). */
  stalledAfterMs?: number;
}

export type JobHandler<T> = (data: T) => Promise<void>;

/**
 * A small durable job queue: delayed jobs, id-deduplicated jobs, retries with a caller-chosen
 * backoff. BullMQ on Redis when configured (jobs survive a restart), memory in the embedded default.
 */
export abstract class JobQueue<T> {
  abstract add(data: T, options: JobOptions): Promise<void>;
  /** Runs a delayed job now (no-op when it is not waiting). */
  abstract promote(jobId: string): Promise<void>;
  /** Jobs waiting or delayed. */
  abstract size(): Promise<number>;
  /** Drops the job that has waited longest, to keep the queue bounded. */
  abstract dropOldest(): Promise<void>;
  abstract consume(handler: JobHandler<T>, options: ConsumeOptions<T>): Promise<void>;
  abstract close(): Promise<void>;
}

interface MemoryJob<T> {
  data: T;
  jobId?: string;
  attempts: number;
  tries: number;
  timer?: NodeJS.Timeout;
}

export class InProcessJobQueue<T> extends JobQueue<T> {
  /** jobs not running, in the order they were added */
  private readonly waiting = new Set<MemoryJob<T>>();
  /** ids of jobs waiting or running */
  private readonly byId = new Map<string, MemoryJob<T>>();
  private readonly ready: MemoryJob<T>[] = [];
  private handler?: JobHandler<T>;
  private options?: ConsumeOptions<T>;
  private active = 0;
  private closed = false;

  async add(data: T, options: JobOptions): Promise<void> {
    if (this.closed || (options.jobId && this.byId.has(options.jobId))) return;
    const job: MemoryJob<T> = { data, jobId: options.jobId, attempts: options.attempts, tries: 0 };
    if (job.jobId) this.byId.set(job.jobId, job);
    this.waiting.add(job);
    this.schedule(job, options.delayMs ?? 0);
  }

  async promote(jobId: string): Promise<void> {
    const job = this.byId.get(jobId);
    if (job?.timer) this.schedule(job, 0);
  }

  async size(): Promise<number> {
    return this.waiting.size;
  }

  async dropOldest(): Promise<void> {
    const oldest = this.waiting.values().next().value;
    if (!oldest) return;
    clearTimeout(oldest.timer);
    this.forget(oldest);
    const i = this.ready.indexOf(oldest);
    if (i >= 0) this.ready.splice(i, 1);
  }

  async consume(handler: JobHandler<T>, options: ConsumeOptions<T>): Promise<void> {
    this.handler = handler;
    this.options = options;
    this.dispatch();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting) clearTimeout(job.timer);
  }

  private schedule(job: MemoryJob<T>, delayMs: number): void {
    clearTimeout(job.timer);
    job.timer = undefined;
    if (delayMs <= 0) {
      this.ready.push(job);
      this.dispatch();
      return;
    }
    job.timer = setTimeout(() => {
      job.timer = undefined;
      this.ready.push(job);
      this.dispatch();
    }, delayMs);
    job.timer.unref();
  }

  private forget(job: MemoryJob<T>): void {
    this.waiting.delete(job);
    if (job.jobId && this.byId.get(job.jobId) === job) this.byId.delete(job.jobId);
  }

  private dispatch(): void {
    while (!this.closed && this.handler && this.options && this.active < this.options.concurrency && this.ready.length) {
      const job = this.ready.shift() as MemoryJob<T>;
      this.waiting.delete(job);
      this.active++;
      job.tries++;
      const options = this.options;
      void this.handler(job.data)
        .then(
          () => this.forget(job),
          (err: Error) => {
            if (job.tries >= job.attempts || this.closed) return this.forget(job);
            this.waiting.add(job);
            this.schedule(job, options.backoffMs(job.tries, err, job.data));
          },
        )
        .finally(() => {
          this.active--;
          this.dispatch();
        });
    }
  }
}

export class BullJobQueue<T> extends JobQueue<T> {
  private readonly queue: Queue;
  private worker?: Worker;
  private readonly logger: Logger;

  /** Jobs are removed when they complete or are given up: their ids are free for the sweeps that queue them again. */
  constructor(
    private readonly name: string,
    private readonly redisUrl: string,
    private readonly prefix: string,
  ) {
    super();
    this.logger = new Logger(name);
    // Jobs are added on a request's or a run's path (after an event is stored): during an outage the
    // add fails within seconds, as the bus's publish does, instead of holding the caller until Redis
    // is back; the sweep queues what was missed.
    this.queue = new Queue(name, {
      connection: { url: redisUrl, ...REQUEST_PATH_REDIS },
      prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
    this.queue.on('error', (err: Error) => this.logger.warn(`queue: ${err.message}`));
  }

  async add(data: T, options: JobOptions): Promise<void> {
    await this.queue.add(this.name, data, {
      jobId: options.jobId,
      delay: options.delayMs,
      attempts: options.attempts,
      backoff: { type: 'berth' },
    });
  }

  async promote(jobId: string): Promise<void> {
    const job = await this.queue.getJob(jobId);
    // Another process may promote or start it between the two calls; losing that race is fine.
    if (job && (await job.isDelayed())) await job.promote().catch(() => undefined);
  }

  async size(): Promise<number> {
    return this.queue.getJobCountByTypes('waiting', 'delayed', 'prioritized');
  }

  async dropOldest(): Promise<void> {
    const [oldest] = await this.queue.getJobs(['waiting', 'delayed'], 0, 0, true);
    await oldest?.remove().catch(() => undefined);
  }

  async consume(handler: JobHandler<T>, options: ConsumeOptions<T>): Promise<void> {
    this.worker = new Worker(this.name, async (job) => handler(job.data as T), {
      connection: { url: this.redisUrl, maxRetriesPerRequest: null },
      prefix: this.prefix,
      concurrency: options.concurrency,
      ...(options.stalledAfterMs ? { lockDuration: options.stalledAfterMs, stalledInterval: options.stalledAfterMs } : {}),
      settings: {
        backoffStrategy: (attemptsMade: number, _type?: string, err?: Error, job?: { data: unknown }) =>
          options.backoffMs(attemptsMade, err ?? new Error('failed'), job?.data as T),
      },
    });
    this.worker.on('error', (err: Error) => this.logger.warn(`worker: ${err.message}`));
    await this.worker.waitUntilReady();
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }
}
