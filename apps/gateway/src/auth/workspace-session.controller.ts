import { Controller, Delete, HttpCode, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiNoContentResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiKeyGuard } from './api-key.guard';
import { WORKSPACE_SESSION_COOKIE } from './workspace-session';
import { ApiErrors } from '../common/api-docs';

const TEN_YEARS_S = 315_360_000;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/**
 * The workspace session cookie (contract §1.2): a browser cannot add X-Session-API-Key to an
 * <iframe> or <img>, so the key rides in an HttpOnly cookie valid only on the conversation paths.
 */
@ApiTags('Auth')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/auth/workspace-session')
export class WorkspaceSessionController {
  @Post()
  @HttpCode(204)
  @ApiOperation({ operationId: 'create_workspace_session', summary: 'Set the workspace session cookie (the same key) for /api/conversations/{id}/workspace' })
  @ApiNoContentResponse()
  @ApiErrors()
  open(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): void {
    const key = request.headers['x-session-api-key'];
    reply.header('set-cookie', cookie(request, typeof key === 'string' ? encodeURIComponent(key) : '', TEN_YEARS_S));
  }

  @Delete()
  @HttpCode(204)
  @ApiOperation({ operationId: 'delete_workspace_session', summary: 'Clear the workspace session cookie' })
  @ApiNoContentResponse()
  @ApiErrors()
  close(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): void {
    reply.header('set-cookie', cookie(request, '', 0));
  }
}

/** `Secure; Partitioned` over HTTPS and on loopback hosts (browsers treat those as secure), as OpenHands sets it. */
function cookie(request: FastifyRequest, value: string, maxAge: number): string {
  const proto = String(request.headers['x-forwarded-proto'] ?? request.protocol).split(',')[0].trim();
  const host = String(request.headers['x-forwarded-host'] ?? request.headers.host ?? '').split(',')[0].trim();
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  const secure = proto === 'https' || LOOPBACK_HOSTS.has(hostname);
  return `${WORKSPACE_SESSION_COOKIE}=${value}; Path=/api/conversations; HttpOnly; SameSite=None; Max-Age=${maxAge}${secure ? '; Secure; Partitioned' : ''}`;
}
