import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { CreateSandboxRequestSchema, SandboxInfoSchema, SandboxPageSchema, SandboxSearchQuerySchema, SuccessSchema } from '@berth/contracts';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiQueryFrom } from '../common/api-docs';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { SandboxesService } from './sandboxes.service';

/** The base URL clients reached us by (honours X-Forwarded-* behind a proxy). */
function baseUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

@ApiTags('Sandboxes')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/sandboxes')
export class SandboxesController {
  constructor(
    private readonly sandboxes: SandboxesService,
    private readonly audit: AuditService,
  ) {}

  @Post()
  @ApiOperation({ operationId: 'create_sandbox', summary: 'Create a sandbox and start it; its agent-server surface is at `url`' })
  @ApiJsonBody(CreateSandboxRequestSchema)
  @ApiJson(201, SandboxInfoSchema, 'Created')
  async create(@CurrentPrincipal() p: Principal, @Body(new ZodPipe(CreateSandboxRequestSchema)) body: z.output<typeof CreateSandboxRequestSchema>, @Req() req: FastifyRequest) {
    const row = await this.sandboxes.create(p, body);
    await this.audit.record(p, 'create', 'sandbox', row.id);
    return this.sandboxes.info(row, baseUrl(req));
  }

  @Get()
  @ApiOperation({ operationId: 'list_sandboxes', summary: 'List sandboxes, newest first (keyset paging by page_id)' })
  @ApiQueryFrom(SandboxSearchQuerySchema)
  @ApiJson(200, SandboxPageSchema)
  async list(@CurrentPrincipal() p: Principal, @Query(new ZodPipe(SandboxSearchQuerySchema, 'query')) q: z.output<typeof SandboxSearchQuerySchema>, @Req() req: FastifyRequest) {
    const { rows, nextPageId } = await this.sandboxes.list(p, q);
    return { items: rows.map((r) => this.sandboxes.info(r, baseUrl(req))), next_page_id: nextPageId };
  }

  @Get(':sandbox_id')
  @ApiOperation({ operationId: 'get_sandbox', summary: 'Get a sandbox' })
  @ApiJson(200, SandboxInfoSchema)
  async get(@CurrentPrincipal() p: Principal, @Param('sandbox_id', new UuidPipe('sandbox_id')) id: string, @Req() req: FastifyRequest) {
    return this.sandboxes.info(await this.sandboxes.require(p, id), baseUrl(req));
  }

  @Post(':sandbox_id/pause')
  @HttpCode(200)
  @ApiOperation({ operationId: 'pause_sandbox', summary: 'Stop the executor; files are kept' })
  @ApiJson(200, SandboxInfoSchema)
  async pause(@CurrentPrincipal() p: Principal, @Param('sandbox_id', new UuidPipe('sandbox_id')) id: string, @Req() req: FastifyRequest) {
    const row = await this.sandboxes.pause(p, id);
    await this.audit.record(p, 'pause', 'sandbox', id);
    return this.sandboxes.info(row, baseUrl(req));
  }

  @Post(':sandbox_id/resume')
  @HttpCode(200)
  @ApiOperation({ operationId: 'resume_sandbox', summary: 'Start the executor again (a dead one is restarted)' })
  @ApiJson(200, SandboxInfoSchema)
  async resume(@CurrentPrincipal() p: Principal, @Param('sandbox_id', new UuidPipe('sandbox_id')) id: string, @Req() req: FastifyRequest) {
    const row = await this.sandboxes.resume(p, id);
    await this.audit.record(p, 'resume', 'sandbox', id);
    return this.sandboxes.info(row, baseUrl(req));
  }

  @Delete(':sandbox_id')
  @ApiOperation({ operationId: 'delete_sandbox', summary: 'Delete the sandbox: executor, files and record' })
  @ApiJson(200, SuccessSchema)
  async remove(@CurrentPrincipal() p: Principal, @Param('sandbox_id', new UuidPipe('sandbox_id')) id: string) {
    await this.sandboxes.remove(p, id);
    await this.audit.record(p, 'delete', 'sandbox', id);
    return { success: true };
  }
}
