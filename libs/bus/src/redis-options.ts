import type { RedisOptions } from 'ioredis';

/**
 * Reconnection for clients on a request's path: tries again every ≤ 1 s (ioredis's default backs
 * off to 5 s), so with maxRetriesPerRequest 3 a command fails within a few seconds of an outage
 * (the caller answers 503) and the client is back within a second of Redis.
 */
export const REQUEST_PATH_REDIS = {
  maxRetriesPerRequest: 3,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
} satisfies RedisOptions;
