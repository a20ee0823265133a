import { HttpException } from '@nestjs/common';

/** The X-RateLimit-* headers of a limit: what it is, what is left, seconds until it resets. */
export function rateLimitHeaders(limit: number, remaining: number, resetSeconds: number): Record<string, string> {
  return { 'X-RateLimit-Limit': String(limit), 'X-RateLimit-Remaining': String(Math.max(0, remaining)), 'X-RateLimit-Reset': String(resetSeconds) };
}

/** 429 `{"detail": …}` with Retry-After and the X-RateLimit-* headers (the error filter sends them). */
export class TooManyRequests extends HttpException {
  constructor(detail: string, limit: number, retryAfterSeconds: number) {
    super({ detail, headers: { 'Retry-After': String(retryAfterSeconds), ...rateLimitHeaders(limit, 0, retryAfterSeconds) } }, 429);
  }
}
