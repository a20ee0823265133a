import { Gauge } from 'prom-client';
import { metricsRegistry } from './registry';

export interface QueueDepth {
  waiting: number;
  active: number;
}

/** A scrape waits at most this long for the queue (a Redis outage must not hang /metrics). */
const READ_TIMEOUT_MS = 1000;

let readDepth: (() => Promise<QueueDepth>) | null = null;

/** Run-queue jobs by state, read from the queue at scrape time (BullMQ in Redis, or the in-process queue). */
export const runQueueJobs = new Gauge({
  name: 'berth_run_queue_jobs',
  help: 'Runs in the run queue, by state (waiting, active); read from the queue when scraped',
  labelNames: ['state'] as const,
  registers: [metricsRegistry],
  async collect() {
    if (!readDepth) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), READ_TIMEOUT_MS)));
    // An unreadable queue leaves the series out rather than reporting a made-up zero.
    const depth = await Promise.race([readDepth().catch(() => null), timeout]).finally(() => clearTimeout(timer));
    this.reset();
    if (!depth) return;
    this.set({ state: 'waiting' }, depth.waiting);
    this.set({ state: 'active' }, depth.active);
  },
});

/** Names the queue the gauge reads (the latest one wins); returns the call that forgets it. */
export function measureRunQueue(read: () => Promise<QueueDepth>): () => void {
  readDepth = read;
  return () => {
    if (readDepth === read) readDepth = null;
  };
}
