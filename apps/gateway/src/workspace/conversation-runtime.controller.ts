import { Controller, Delete, Get, HttpException, Param, Post, Query, Req, Res, UnprocessableEntityException, UseGuards } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiOkResponse, ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { parseUuid, VSCODE_DISABLED_DETAIL, VSCodeStatusSchema, VSCodeUrlQuerySchema, VSCodeUrlResponseSchema } from '@berth/contracts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiErrors, ApiJson, ApiQueryFrom } from '../common/api-docs';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { requireConversationWorkspacePath } from './workspace-paths';
import { requireInConversation, WorkspaceProxyService } from './workspace-proxy.service';
import { TrajectoryService } from './trajectory.service';
import { WorkspaceRoutingService } from './workspace-routing.service';

const RUNTIME_PATHS = ['file/*', 'bash/*', 'git/*'];

/** VS Code is not part of a Berth sandbox: OpenHands' answers with VS Code disabled. */
function vscodeDisabled(): HttpException {
  return new HttpException({ detail: VSCODE_DISABLED_DETAIL }, 503);
}
const VSCODE_STATUS = { running: false, enabled: false, message: 'VSCode is disabled in configuration' };

/**
 * `/api/conversations/{id}/bash|file|git/*` (OpenHands' runtime router): forwarded to that
 * conversation's sandbox through the one workspace proxy, with the same allowlist as `/api/...`
 * (documented per route in workspace-docs.ts).
 */
@ApiTags('Conversation runtime')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/conversations/:conversation_id')
export class ConversationRuntimeController {
  constructor(
    private readonly proxy: WorkspaceProxyService,
    private readonly routing: WorkspaceRoutingService,
    private readonly trajectories: TrajectoryService,
  ) {}

  private forward(p: Principal, id: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { executorPath } = requireConversationWorkspacePath(request.url);
    return this.proxy.forward(p, request, reply, { id, executorPath });
  }

  @Get(RUNTIME_PATHS)
  @ApiExcludeEndpoint()
  read(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.forward(p, id, request, reply);
  }

  @Post(RUNTIME_PATHS)
  @ApiExcludeEndpoint()
  write(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.forward(p, id, request, reply);
  }

  @Delete(RUNTIME_PATHS)
  @ApiExcludeEndpoint()
  clear(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.forward(p, id, request, reply);
  }

  @Get('file/download-trajectory/:trajectory_id')
  @ApiOperation({ operationId: 'download_trajectory', summary: 'The conversation as a zip of its state and events (the trajectory named must be this conversation: 422 otherwise)' })
  @ApiParam({ name: 'conversation_id' })
  @ApiParam({ name: 'trajectory_id' })
  @ApiOkResponse({ description: 'The zip archive', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } })
  @ApiErrors()
  async trajectory(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Param('trajectory_id') trajectoryId: string,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.routing.conversation(p, id);
    const named = parseUuid(trajectoryId);
    if (!named) throw new UnprocessableEntityException({ detail: 'Invalid trajectory conversation id' });
    if (named !== id) throw new UnprocessableEntityException({ detail: 'Trajectory must belong to the selected conversation' });
    await this.trajectories.download(p, id, reply);
  }

  @Get('vscode/url')
  @ApiOperation({ operationId: 'get_runtime_vscode_url', summary: 'VS Code URL: 503, VS Code is disabled (a Berth sandbox runs none)' })
  @ApiParam({ name: 'conversation_id' })
  @ApiQueryFrom(VSCodeUrlQuerySchema)
  @ApiJson(200, VSCodeUrlResponseSchema)
  async vscodeUrl(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Query(new ZodPipe(VSCodeUrlQuerySchema, 'query')) query: z.output<typeof VSCodeUrlQuerySchema>,
  ): Promise<never> {
    const owner = await this.routing.conversation(p, id);
    if (query.workspace_dir !== undefined) requireInConversation(owner.workingDir, query.workspace_dir, 'workspace_dir');
    throw vscodeDisabled();
  }

  @Get('vscode/status')
  @ApiOperation({ operationId: 'get_vscode_status', summary: 'VS Code status: disabled' })
  @ApiParam({ name: 'conversation_id' })
  @ApiJson(200, VSCodeStatusSchema)
  async vscodeStatus(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    await this.routing.conversation(p, id);
    return VSCODE_STATUS;
  }
}

/** `GET /api/file/download-trajectory/{conversation_id}`: served by the gateway, where the events are. */
@ApiTags('Files')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/file/download-trajectory')
export class TrajectoryController {
  constructor(private readonly trajectories: TrajectoryService) {}

  @Get(':conversation_id')
  @ApiOperation({ operationId: 'download_trajectory', summary: "A conversation's trajectory: a zip of its state (base_state.json) and its events, as OpenHands persists them" })
  @ApiParam({ name: 'conversation_id' })
  @ApiOkResponse({ description: 'The zip archive', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } })
  @ApiErrors()
  download(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Res() reply: FastifyReply): Promise<void> {
    return this.trajectories.download(p, id, reply);
  }
}

/** `/api/vscode/*` with VS Code disabled, as the OpenHands agent server answers it. */
@ApiTags('VSCode')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/vscode')
export class VSCodeController {
  @Get('url')
  @ApiOperation({ operationId: 'get_vscode_url', summary: 'VS Code URL: 503, VS Code is disabled (a Berth sandbox runs none)' })
  @ApiQueryFrom(VSCodeUrlQuerySchema)
  @ApiJson(200, VSCodeUrlResponseSchema)
  url(@Query(new ZodPipe(VSCodeUrlQuerySchema, 'query')) _query: z.output<typeof VSCodeUrlQuerySchema>): never {
    throw vscodeDisabled();
  }

  @Get('status')
  @ApiOperation({ operationId: 'get_vscode_status', summary: 'VS Code status: disabled' })
  @ApiJson(200, VSCodeStatusSchema)
  status() {
    return VSCODE_STATUS;
  }
}
