import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';

/** Held while a conversation runs, so that it never runs twice at once. */
export interface RunLease {
  /**
   * Aborted once the lease can no longer be counted on: taken by another holder, or not renewed
   * for its whole ttl (a frozen or lost Redis) — the holder must stop acting at once.
   */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

/**
 * One lease per conversation. A holder renews it while alive; a holder that dies (kill -9) lets it
 * lapse after `ttlMs`, so the run's next taker gets it. `acquire` waits up to `waitMs` (or until
 * `giveUp` aborts) and resolves null when someone (alive) still holds it.
 */
export abstract class RunLock {
  abstract acquire(conversationId: string, waitMs: number, giveUp?: AbortSignal): Promise<RunLease | null>;
  /** Whether someone holds the conversation's lease now. */
  abstract isHeld(conversationId: string): Promise<boolean>;
  abstract close(): Promise<void>;
}

const POLL_MS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class InProcessRunLock extends RunLock {
  private readonly held = new Set<string>();

  async acquire(conversationId: string, waitMs: number, giveUp?: AbortSignal): Promise<RunLease | null> {
    const deadline = Date.now() + waitMs;
    while (this.held.has(conversationId)) {
      if (Date.now() >= deadline || giveUp?.aborted) return null;
      await sleep(POLL_MS);
    }
    this.held.add(conversationId);
    // In one process a lease is never lost: it ends with its holder.
    return { lost: new AbortController().signal, release: async () => void this.held.delete(conversationId) };
  }

  async isHeld(conversationId: string): Promise<boolean> {
    return this.held.has(conversationId);
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

  private key(conversationId: string): string {
    return `${this.prefix}:run-lock:${conversationId}`;
  }

  async acquire(conversationId: string, waitMs: number, giveUp?: AbortSignal): Promise<RunLease | null> {
    const key = this.key(conversationId);
    const token = randomUUID();
    const deadline = Date.now() + waitMs;
    for (;;) {
      const attempt = Date.now();
      if ((await this.redis.set(key, token, 'PX', this.ttlMs, 'NX')) === 'OK') {
        return this.hold(key, token, attempt);
      }
      if (Date.now() >= deadline || giveUp?.aborted) return null;
      await sleep(POLL_MS);
    }
  }

  /**
   * Renews the lease every ttl/3. It counts as lost when a renewal finds another holder (or none), or
   * when no renewal succeeded for a whole ttl since the last one was sent: by then the key may have
   * expired in Redis and another worker may hold it.
   */
  private hold(key: string, token: string, acquiredAt: number): RunLease {
    const lost = new AbortController();
    let confirmedAt = acquiredAt;
    const stop = () => {
      clearInterval(renew);
      clearTimeout(expiry);
    };
    const lose = (why: string) => {
      stop();
      if (!lost.signal.aborted) lost.abort(new Error(why));
    };
    let expiry = setTimeout(() => lose('lease not renewed within its ttl'), this.ttlMs);
    expiry.unref();
    const renew = setInterval(() => {
      const sent = Date.now();
      this.redis.eval(RENEW, 1, key, token, String(this.ttlMs)).then(
        (ok) => {
          if (lost.signal.aborted) return;
          if (Number(ok) !== 1) return lose('lease taken by another holder');
          if (sent <= confirmedAt) return;
          confirmedAt = sent;
          clearTimeout(expiry);
          expiry = setTimeout(() => lose('lease not renewed within its ttl'), Math.max(0, confirmedAt + this.ttlMs - Date.now()));
          expiry.unref();
        },
        () => undefined,
      );
    }, this.ttlMs / 3);
    renew.unref();
    return {
      lost: lost.signal,
      release: async () => {
        stop();
        await this.redis.eval(RELEASE, 1, key, token);
      },
    };
  }

  async isHeld(conversationId: string): Promise<boolean> {
    return (await this.redis.exists(this.key(conversationId))) === 1;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
