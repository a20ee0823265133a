import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';

/** Held while a conversation runs, so that it never runs twice at once. */
export interface RunLease {
  release(): Promise<void>;
}

/**
 * One lease per conversation. A holder renews it while alive; a holder that dies (kill -9) lets it
 * lapse after `ttlMs`, so the run's next taker gets it. `acquire` waits up to `waitMs` and resolves
 * null when someone (alive) still holds it.
 */
export abstract class RunLock {
  abstract acquire(conversationId: string, waitMs: number): Promise<RunLease | null>;
  abstract close(): Promise<void>;
}

const POLL_MS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class InProcessRunLock extends RunLock {
  private readonly held = new Set<string>();

  async acquire(conversationId: string, waitMs: number): Promise<RunLease | null> {
    const deadline = Date.now() + waitMs;
    while (this.held.has(conversationId)) {
      if (Date.now() >= deadline) return null;
      await sleep(POLL_MS);
    }
    this.held.add(conversationId);
    return { release: async () => void this.held.delete(conversationId) };
  }

  async close(): Promise<void> {}
}

const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export class RedisRunLock extends RunLock {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly ttlMs: number,
    private readonly prefix = 'berth',
  ) {
    super();
    this.redis = new Redis(url, { maxRetriesPerRequest: 3 });
    this.redis.on('error', () => undefined);
  }

  async acquire(conversationId: string, waitMs: number): Promise<RunLease | null> {
    const key = `${this.prefix}:run-lock:${conversationId}`;
    const token = randomUUID();
    const deadline = Date.now() + waitMs;
    while ((await this.redis.set(key, token, 'PX', this.ttlMs, 'NX')) !== 'OK') {
      if (Date.now() >= deadline) return null;
      await sleep(POLL_MS);
    }
    const renew = setInterval(() => void this.redis.eval(RENEW, 1, key, token, String(this.ttlMs)).catch(() => undefined), this.ttlMs / 3);
    renew.unref();
    return {
      release: async () => {
        clearInterval(renew);
        await this.redis.eval(RELEASE, 1, key, token);
      },
    };
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
