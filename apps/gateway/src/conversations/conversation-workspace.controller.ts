import { Controller, Get, Param, Req, Res, UseGuards } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiErrors } from '../common/api-docs';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { WorkspaceProxyService } from '../workspace/workspace-proxy.service';
import { ConversationsService } from './conversations.service';

const SERVED_FILE = { description: 'The file, its content type inferred from its name', content: { '*/*': { schema: { type: 'string', format: 'binary' } } } };

/**
 * `GET /api/conversations/{id}/workspace[/{path}]` (contract §3.7): the working dir as a static web
 * server, for a UI's previews (authenticated by header or by the workspace session cookie).
 */
@ApiTags('Conversations')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/conversations/:conversation_id/workspace')
export class ConversationWorkspaceController {
  constructor(
    private readonly conversations: ConversationsService,
    private readonly workspace: WorkspaceProxyService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'serve_workspace_root', summary: "The conversation's working dir: its index.html" })
  @ApiOkResponse(SERVED_FILE)
  @ApiErrors()
  serveRoot(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Res() reply: FastifyReply): Promise<void> {
    return this.serve(p, id, '', reply);
  }

  @Get('*')
  @ApiOperation({ operationId: 'serve_workspace_file', summary: "A file of the conversation's working dir (a folder serves its index.html)" })
  @ApiParam({ name: 'path', description: 'The file, relative to the working dir (may hold slashes)', schema: { type: 'string' } })
  @ApiOkResponse(SERVED_FILE)
  @ApiErrors()
  serveFile(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.serve(p, id, (request.params as Record<string, string | undefined>)['*'] ?? '', reply);
  }

  private async serve(p: Principal, id: string, path: string, reply: FastifyReply): Promise<void> {
    const row = await this.conversations.require(p, id);
    await this.workspace.serveWorkspaceFile(p, { working_dir: (row.workspace as { working_dir: string }).working_dir }, path, reply);
  }
}
