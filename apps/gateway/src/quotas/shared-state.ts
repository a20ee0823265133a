import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { REQUEST_PATH_REDIS } from '@berth/bus';

/** A fixed-window count: how many hits this window holds now, and when the window ends. */
export interface WindowCount {
  count: number;
  resetAt: number;
}

/**
 * What every gateway replica must see alike: request windows, slots held by open sockets, and
 * version counters that tell caches to drop. Redis when configured, this process's memory otherwise
 * (the embedded default is a single process).
 */
export abstract class SharedState {
  /** Counts a hit in the current `windowMs` window of `key`. */
  abstract hit(key: string, windowMs: number): Promise<WindowCount>;
  /**
   * Takes a slot of `key` for `member` unless `limit` are held; a slot not renewed within `ttlMs`
   * lapses (a replica that died frees its slots).
   */
  abstract acquire(key: string, member: string, limit: number, ttlMs: number): Promise<boolean>;
  /** Renews the slots this replica still holds. */
  abstract renew(key: string, members: string[], ttlMs: number): Promise<void>;
  abstract release(key: string, member: string): Promise<void>;
  abstract version(key: string): Promise<number>;
  abstract bump(key: string): Promise<number>;
  /** Keeps a small value under `key` for `ttlMs`. */
  abstract remember(key: string, value: string, ttlMs: number): Promise<void>;
  /** The value remembered under `key`, or null once it lapsed. */
  abstract recall(key: string): Promise<string | null>;
  abstract close(): Promise<void>;
}

export class InProcessSharedState extends SharedState {
  private readonly windows = new Map<string, WindowCount>();
  private readonly slots = new Map<string, Map<string, number>>();
  private readonly versions = new Map<string, number>();
  private readonly values = new Map<string, { value: string; expires: number }>();

  async hit(key: string, windowMs: number): Promise<WindowCount> {
    const now = Date.now();
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      if (this.windows.size >= 10_000) for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
      window = { count: 0, resetAt: Math.floor(now / windowMs) * windowMs + windowMs };
      this.windows.set(key, window);
    }
    window.count += 1;
    return { ...window };
  }

  async acquire(key: string, member: string, limit: number, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    let held = this.slots.get(key);
    if (!held) this.slots.set(key, (held = new Map()));
    for (const [m, expires] of held) if (expires <= now) held.delete(m);
    if (held.size >= limit) return false;
    held.set(member, now + ttlMs);
    return true;
  }

  async renew(key: string, members: string[], ttlMs: number): Promise<void> {
    const held = this.slots.get(key);
    for (const m of members) if (held?.has(m)) held.set(m, Date.now() + ttlMs);
  }

  async release(key: string, member: string): Promise<void> {
    const held = this.slots.get(key);
    held?.delete(member);
    if (held?.size === 0) this.slots.delete(key);
  }

  async version(key: string): Promise<number> {
    return this.versions.get(key) ?? 0;
  }

  async bump(key: string): Promise<number> {
    const next = (this.versions.get(key) ?? 0) + 1;
    this.versions.set(key, next);
    return next;
  }

  async remember(key: string, value: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    if (this.values.size >= 10_000) for (const [k, v] of this.values) if (v.expires <= now) this.values.delete(k);
    // Still full of live values: the oldest goes (a Map keeps insertion order).
    if (this.values.size >= 10_000) this.values.delete(this.values.keys().next().value as string);
    this.values.set(key, { value, expires: now + ttlMs });
  }

  async recall(key: string): Promise<string | null> {
    const held = this.values.get(key);
    if (!held || held.expires <= Date.now()) return null;
    return held.value;
  }

  async close(): Promise<void> {}
}

const HIT = `
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
return n`;

const ACQUIRE = `
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[4])
redis.call('pexpire', KEYS[1], ARGV[5])
return 1`;

export class RedisSharedState extends SharedState {
  private readonly redis: Redis;
  private readonly logger = new Logger('SharedState');

  constructor(
    url: string,
    private readonly prefix: string,
  ) {
    super();
    this.redis = new Redis(url, REQUEST_PATH_REDIS);
    this.redis.on('error', (err: Error) => this.logger.warn(`redis: ${err.message}`));
  }

  private key(key: string): string {
    return `${this.prefix}:${key}`;
  }

  async hit(key: string, windowMs: number): Promise<WindowCount> {
    // Windows are aligned to the clock so every replica counts into the same one.
    const start = Math.floor(Date.now() / windowMs) * windowMs;
    const count = (await this.redis.eval(HIT, 1, this.key(`${key}:${start}`), String(windowMs * 2))) as number;
    return { count, resetAt: start + windowMs };
  }

  async acquire(key: string, member: string, limit: number, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const ok = await this.redis.eval(ACQUIRE, 1, this.key(key), String(now), String(now + ttlMs), String(limit), member, String(ttlMs * 2));
    return ok === 1;
  }

  async renew(key: string, members: string[], ttlMs: number): Promise<void> {
    if (!members.length) return;
    const expires = String(Date.now() + ttlMs);
    // XX: only slots still held are renewed, a released one is not brought back.
    await this.redis.zadd(this.key(key), 'XX', ...members.flatMap((m) => [expires, m]));
    await this.redis.pexpire(this.key(key), ttlMs * 2);
  }

  async release(key: string, member: string): Promise<void> {
    await this.redis.zrem(this.key(key), member);
  }

  async version(key: string): Promise<number> {
    return Number((await this.redis.get(this.key(key))) ?? 0);
  }

  async bump(key: string): Promise<number> {
    return this.redis.incr(this.key(key));
  }

  async remember(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.key(key), value, 'PX', ttlMs);
  }

  async recall(key: string): Promise<string | null> {
    return this.redis.get(this.key(key));
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
