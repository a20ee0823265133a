import { Controller, Delete, Get, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiExcludeEndpoint } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { requirePublicWorkspacePath } from './workspace-paths';
import { WorkspaceProxyService } from './workspace-proxy.service';

const WORKSPACE_PATHS = ['file/*', 'bash/*', 'git/*'];

/**
 * `/api/file/*`, `/api/bash/*`, `/api/git/*` of a sandbox (under `/sandboxes/{id}`), served by its
 * executor with OpenHands' paths, parameters and bodies (contract §3.4–3.6). The document lists
 * each route the executor serves (workspace-docs.ts), not these wildcards.
 */
@UseGuards(ApiKeyGuard)
@Controller('api')
export class WorkspaceController {
  constructor(private readonly proxy: WorkspaceProxyService) {}

  @Get(WORKSPACE_PATHS)
  @ApiExcludeEndpoint()
  read(@CurrentPrincipal() p: Principal, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    requirePublicWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply);
  }

  @Post(WORKSPACE_PATHS)
  @ApiExcludeEndpoint()
  write(@CurrentPrincipal() p: Principal, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    requirePublicWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply);
  }

  @Delete(WORKSPACE_PATHS)
  @ApiExcludeEndpoint()
  clear(@CurrentPrincipal() p: Principal, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    requirePublicWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply);
  }
}
