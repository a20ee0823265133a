import { ExecutionContext, Injectable, NotFoundException, ServiceUnavailableException, UnauthorizedException } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import { Database, SandboxRepository } from '@berth/persistence';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../common/tenant.decorator';
import { sandboxOfRequest } from '../common/sandbox-prefix';
import { QuotaService } from '../quotas/quota.service';
import { ApiKeyService } from './api-key.service';
import { workspaceSessionKey } from './workspace-session';

const STARTUP_WAIT_MS = 15_000;

/**
 * Guards every /api route and counts the request against its tenant's rate. Runs before body validation (the JSON parser never rejects), so a wrong
 * key answers 401 even for a malformed request, as OpenHands does. Requests that arrive while the
 * database is still migrating wait for it, then 503.
 */
@Injectable()
export class ApiKeyGuard extends AuthGuard('api-key') {
  constructor(
    private readonly keys: ApiKeyService,
    private readonly db: Database,
    private readonly quotas: QuotaService,
    private readonly sandboxes: SandboxRepository,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.db.isMigrated) await this.waitForDatabase();
    const request = context.switchToHttp().getRequest<FastifyRequest & { user?: Principal }>();
    const cookieKey = request.headers['x-session-api-key'] ? undefined : workspaceSessionKey(request.url.split('?')[0], request.headers);
    if (cookieKey !== undefined) {
      const principal = await this.keys.resolve(cookieKey);
      if (!principal) throw new UnauthorizedException();
      request.user = principal;
    } else if (this.keys.isOpen && !request.headers['x-session-api-key']) {
      request.user = (await this.keys.resolve(undefined)) as Principal;
    } else if (!((await super.canActivate(context)) as boolean)) {
      return false;
    }
    await this.limitToSandbox(request as FastifyRequest & { user: Principal });
    request.user = { ...(request.user as Principal), requestId: request.id };
    const rate = await this.quotas.countRequest(request.user);
    if (rate) context.switchToHttp().getResponse<FastifyReply>().headers(rate);
    return true;
  }

  /** Under `/sandboxes/{id}` the caller's view is that sandbox, which must be the caller's own. */
  private async limitToSandbox(request: FastifyRequest & { user: Principal }): Promise<void> {
    const sandboxId = sandboxOfRequest(request.raw);
    if (!sandboxId) return;
    const stateVersion = await this.sandboxes.stateVersionOf(request.user, sandboxId);
    if (stateVersion === null) throw new NotFoundException({ detail: `Sandbox not found: ${sandboxId}` });
    request.user = { ...request.user, sandboxId, sandboxStateVersion: stateVersion };
  }

  private async waitForDatabase(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ServiceUnavailableException('Server is still initializing')), STARTUP_WAIT_MS);
    });
    try {
      await Promise.race([this.db.ready.catch(() => Promise.reject(new ServiceUnavailableException('Database is unavailable'))), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
