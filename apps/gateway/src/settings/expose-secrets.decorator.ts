import { BadRequestException, createParamDecorator, ExecutionContext, ForbiddenException } from '@nestjs/common';
import { ApiHeader } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../common/tenant.decorator';

/** How a response shows stored secrets (contract §1.5): redacted unless X-Expose-Secrets asks. */
export type SecretExposure = 'redacted' | 'encrypted' | 'plaintext';

/**
 * Who may read secrets in clear text: the server's own keys (OH_SESSION_API_KEYS*, or anyone on an
 * open server) may; tenant API keys may not. They can still have Fernet tokens (`encrypted`), which
 * only this server can turn back into keys, so a leaked tenant key does not leak the tenant's LLM keys.
 */
export function mayReadPlaintext(p: Principal): boolean {
  return p.keyId === 'open' || p.keyId.startsWith('env:');
}

export const plaintextRefused = () =>
  new ForbiddenException({
    detail: "Secrets in clear text are only given to the server's own keys (OH_SESSION_API_KEYS); use X-Expose-Secrets: encrypted",
  });

/** The exposure a request asks for; 400 for an unknown mode, 403 for plaintext the key may not have. */
export function secretExposure(p: Principal, header: string | undefined): SecretExposure {
  const value = (header ?? '').trim().toLowerCase();
  if (!value) return 'redacted';
  // "true" is OpenHands' legacy alias of "encrypted" (never of plaintext).
  const mode = value === 'true' ? 'encrypted' : value;
  if (mode !== 'encrypted' && mode !== 'plaintext') {
    throw new BadRequestException({ detail: `Invalid X-Expose-Secrets header value: '${value}'. Valid values are: 'encrypted', 'plaintext'.` });
  }
  if (mode === 'plaintext' && !mayReadPlaintext(p)) throw plaintextRefused();
  return mode;
}

/** The caller's X-Expose-Secrets mode, checked against its key (and documented on the route). */
export const ExposeSecrets = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): SecretExposure => {
    const request = ctx.switchToHttp().getRequest<FastifyRequest & { user: Principal }>();
    const header = request.headers['x-expose-secrets'];
    return secretExposure(request.user, Array.isArray(header) ? header[0] : header);
  },
  [
    (target, key) =>
      ApiHeader({
        name: 'X-Expose-Secrets',
        required: false,
        enum: ['encrypted', 'plaintext'],
        description: 'Show secrets as Fernet tokens (encrypted) or in clear text (plaintext: the server keys only, 403 for tenant keys)',
      })(target, key as string, Object.getOwnPropertyDescriptor(target, key as string) as PropertyDescriptor),
  ],
);
