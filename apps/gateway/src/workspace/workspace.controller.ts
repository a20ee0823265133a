import { Controller, Delete, Get, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson } from '../common/api-docs';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { requirePublicWorkspacePath } from './workspace-paths';
import { WorkspaceProxyService } from './workspace-proxy.service';

const WORKSPACE_PATHS = ['file/*', 'bash/*', 'git/*'];
const DESCRIPTION =
  'Under /sandboxes/{sandbox_id}/api/…, with the paths, parameters and bodies of the OpenHands agent server ' +
  '(file: upload, download, create_directory, archive, home, search_subdirs; bash: start_bash_command, execute_bash_command, ' +
  'bash_events/search, bash_events/{id}, bash_events/, bash_commands/{id}/stop; git: changes, diff, commits, commits/{sha}/changes). ' +
  'Uploads, downloads and archives are streamed.';
const WorkspaceAnswerSchema = z
  .unknown()
  .meta({ id: 'WorkspaceAnswer', description: "The executor's answer, as the OpenHands agent server gives it (JSON, or the file's bytes for a download)." });

/**
 * `/api/file/*`, `/api/bash/*`, `/api/git/*` of a sandbox (under `/sandboxes/{id}`), served by its
 * executor with OpenHands' paths, parameters and bodies (contract §3.4–3.6).
 */
@ApiTags('Workspace (per sandbox)')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api')
export class WorkspaceController {
  constructor(private readonly proxy: WorkspaceProxyService) {}

  @Get(WORKSPACE_PATHS)
  @ApiOperation({ summary: 'Read from the sandbox: file download, archive, home and subfolders, bash events, git changes, diff and commits', description: DESCRIPTION })
  @ApiJson(200, WorkspaceAnswerSchema)
  read(@CurrentPrincipal() p: Principal, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    requirePublicWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply);
  }

  @Post(WORKSPACE_PATHS)
  @ApiOperation({ summary: 'Act in the sandbox: file upload and create_directory, start, execute or stop bash commands', description: DESCRIPTION })
  @ApiJson(200, WorkspaceAnswerSchema)
  write(@CurrentPrincipal() p: Principal, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    requirePublicWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply);
  }

  @Delete(WORKSPACE_PATHS)
  @ApiOperation({ summary: 'Clear the sandbox bash events', description: DESCRIPTION })
  @ApiJson(200, WorkspaceAnswerSchema)
  clear(@CurrentPrincipal() p: Principal, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    requirePublicWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply);
  }
}
