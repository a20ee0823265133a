import { CanActivate, createParamDecorator, ExecutionContext, Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { Database } from '@berth/persistence';
import type { FastifyRequest } from 'fastify';
import type { AdminCaller } from '../audit/audit.service';
import { indexOfKey } from '../auth/api-key.service';

type AdminRequest = FastifyRequest & { admin?: AdminCaller };

/**
 * Guards /api/admin/*: only a BERTH_ADMIN_API_KEYS key in X-Session-API-Key, compared in constant
 * time. Tenant keys (and the OH_SESSION_API_KEYS_* keys) are never admin keys; with no admin key
 * configured the admin API refuses everyone.
 */
@Injectable()
export class AdminKeyGuard implements CanActivate {
  constructor(
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
    private readonly db: Database,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AdminRequest>();
    const header = request.headers['x-session-api-key'];
    const key = Array.isArray(header) ? header[0] : header;
    const index = key ? indexOfKey(this.config.adminApiKeys, key) : -1;
    // The same answer as every other route's: nothing tells an admin route from a tenant one.
    if (index < 0) throw new UnauthorizedException();
    await this.db.ready;
    request.admin = { adminKeyIndex: index, requestId: request.id };
    return true;
  }
}

export const CurrentAdmin = createParamDecorator((_: unknown, ctx: ExecutionContext): AdminCaller => ctx.switchToHttp().getRequest<AdminRequest>().admin as AdminCaller);
