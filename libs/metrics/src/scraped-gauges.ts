import { Gauge } from 'prom-client';
import { metricsRegistry } from './registry';

export interface QueueDepth {
  waiting: number;
  active: number;
}

/** A scrape waits at most this long for a source (a Redis or PostgreSQL outage must not hang /metrics). */
const READ_TIMEOUT_MS = 1000;

/** The source's answer, or null when it fails or is too slow: the series is then left out, not made up. */
async function readWithin<T>(read: () => Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), READ_TIMEOUT_MS)));
  return Promise.race([read().catch(() => null), timeout]).finally(() => clearTimeout(timer));
}

/** One source per gauge, named by whoever owns it (the latest one wins); returns the call that forgets it. */
function sourceSlot<T>() {
  let current: (() => Promise<T>) | null = null;
  return {
    read: () => (current ? readWithin(current) : Promise.resolve(null)),
    set(read: () => Promise<T>): () => void {
      current = read;
      return () => {
        if (current === read) current = null;
      };
    },
  };
}

const runQueue = sourceSlot<QueueDepth>();
const webhookLag = sourceSlot<Map<string, number>>();

/** Run-queue jobs by state, read from the queue at scrape time (BullMQ in Redis, or the in-process queue). */
export const runQueueJobs = new Gauge({
  name: 'berth_run_queue_jobs',
  help: 'Runs in the run queue, by state (waiting, active); read from the queue when scraped',
  labelNames: ['state'] as const,
  registers: [metricsRegistry],
  async collect() {
    const depth = await runQueue.read();
    this.reset();
    if (!depth) return;
    this.set({ state: 'waiting' }, depth.waiting);
    this.set({ state: 'active' }, depth.active);
  },
});

/** Per webhook (its key: a hash of the base URL, which may carry a token), read from the database at scrape time. */
export const webhookDeliveryLag = new Gauge({
  name: 'berth_webhook_delivery_lag_seconds',
  help: 'Age of the oldest stored event a webhook has not yet received (0 when it has all), by webhook key',
  labelNames: ['webhook'] as const,
  registers: [metricsRegistry],
  async collect() {
    const lag = await webhookLag.read();
    this.reset();
    for (const [webhook, seconds] of lag ?? []) this.set({ webhook }, seconds);
  },
});

export const measureRunQueue = (read: () => Promise<QueueDepth>) => runQueue.set(read);
export const measureWebhookLag = (read: () => Promise<Map<string, number>>) => webhookLag.set(read);
