import { createParamDecorator, ExecutionContext } from '@nestjs/common';

/** Who is calling: the tenant every query is scoped by. */
export interface Principal {
  tenantId: string;
  /** `env:<n>` for OH_SESSION_API_KEYS_n, the api_keys row id otherwise, `open` without auth */
  keyId: string;
  /** set under `/sandboxes/{id}/…`: everything is limited to that sandbox */
  sandboxId?: string;
  /** `sandboxId`'s state version as the guard read it (a start check need not read it again) */
  sandboxStateVersion?: number;
  /** the request's id (X-Request-Id), for the audit log */
  requestId?: string;
}

export const CurrentPrincipal = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): Principal => ctx.switchToHttp().getRequest<{ user: Principal }>().user,
);
