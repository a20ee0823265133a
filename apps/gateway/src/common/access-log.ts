import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { AdminCaller } from '../audit/audit.service';
import type { Principal } from './tenant.decorator';

/** Probes answer every few seconds: their lines are debug, so they do not drown the rest. */
const PROBE_ROUTES = new Set(['/alive', '/health', '/ready']);

/** Who called, without the key: its tenant and the key's id (`env:<n>`, an api_keys row id, `open`, `admin:<n>`). */
export function callerFields(principal: Principal | undefined, admin?: AdminCaller): Record<string, string> {
  if (admin) return { key_id: `admin:${admin.adminKeyIndex}` };
  if (!principal) return {};
  return { tenant_id: principal.tenantId, key_id: principal.keyId, ...(principal.sandboxId ? { sandbox_id: principal.sandboxId } : {}) };
}

/** The access log's lines carry `context: "Access"`, as a Nest Logger's would. */
export function accessLogger(log: Logger): Logger {
  return log.child({ context: 'Access' });
}

type AccessRequest = FastifyRequest & { user?: Principal; admin?: AdminCaller };

/**
 * The access log: one line per HTTP request once answered — method, route pattern (ids stay out of
 * it; an unmatched request logs its path without query), status, duration, request id, caller and
 * conversation. 5xx at warn (the error filter logs the failure itself at error), probes at debug.
 */
export function installAccessLog(fastify: FastifyInstance, log: Logger): void {
  const access = accessLogger(log);
  fastify.addHook('onResponse', (request: AccessRequest, reply, done) => {
    const route = request.routeOptions.url;
    const level = reply.statusCode >= 500 ? 'warn' : route !== undefined && PROBE_ROUTES.has(route) ? 'debug' : 'info';
    if (access.isLevelEnabled(level)) {
      const conversationId = (request.params as Record<string, string> | undefined)?.conversation_id;
      access[level]({
        method: request.method,
        ...(route !== undefined ? { route } : { path: request.url.split('?')[0] }),
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 10) / 10,
        request_id: request.id,
        ...callerFields(request.user, request.admin),
        ...(conversationId ? { conversation_id: conversationId } : {}),
      }, 'request');
    }
    done();
  });
}

/**
 * A socket's two lines: `socket opened` once authenticated, `socket closed` with its close code and
 * how long it was open (a socket refused before it authenticated logs its close only).
 */
export class SocketAccess {
  private readonly opened = performance.now();
  private readonly fields: Record<string, string>;
  private principal?: Principal;

  constructor(
    private readonly log: Logger,
    ws: WebSocket,
    route: string,
    requestId: string,
    conversationId?: string,
  ) {
    this.fields = { route, request_id: requestId, ...(conversationId ? { conversation_id: conversationId } : {}) };
    ws.once('close', (code: number) =>
      this.log.info({ ...this.fields, ...callerFields(this.principal), close_code: code, duration_ms: Math.round(performance.now() - this.opened) }, 'socket closed'),
    );
  }

  authenticated(principal: Principal): void {
    this.principal = principal;
    this.log.info({ ...this.fields, ...callerFields(principal) }, 'socket opened');
  }
}
