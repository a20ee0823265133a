import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  ConversationBatchQuerySchema,
  ConversationCountQuerySchema,
  ConversationInfoSchema,
  ConversationPageSchema,
  ConversationRuntimeInfoSchema,
  ConversationSearchQuerySchema,
  CountSchema,
  FinalResponseSchema,
  IncludeSkillsQuerySchema,
  SetConfirmationPolicyRequestSchema,
  SetSecurityAnalyzerRequestSchema,
  SetSecretsRequestSchema,
  StartConversationRequestSchema,
  SuccessSchema,
  UpdateConversationRequestSchema,
} from '@berth/contracts';
import { z } from 'zod';
import type { FastifyReply } from 'fastify';
import { AuditService } from '../audit/audit.service';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiQueryFrom } from '../common/api-docs';
import { CONVERSATION_INFO_EXAMPLE, CONVERSATION_PAGE_EXAMPLE, START_CONVERSATION_EXAMPLE } from '../common/api-examples';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { ConversationsService } from './conversations.service';
import { RunControlService } from './run-control.service';

const SUCCESS = { success: true };
const ConversationBatchSchema = z.array(ConversationInfoSchema.nullable());

@ApiTags('Conversations')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/conversations')
export class ConversationsController {
  constructor(
    private readonly conversations: ConversationsService,
    private readonly runs: RunControlService,
    private readonly audit: AuditService,
  ) {}

  @Get('search')
  @ApiOperation({ operationId: 'search_conversations', summary: 'Search conversations (keyset paging by page_id)' })
  @ApiQueryFrom(ConversationSearchQuerySchema)
  @ApiJson(200, ConversationPageSchema, undefined, CONVERSATION_PAGE_EXAMPLE)
  search(@CurrentPrincipal() p: Principal, @Query(new ZodPipe(ConversationSearchQuerySchema, 'query')) q: z.output<typeof ConversationSearchQuerySchema>) {
    return this.conversations.search(p, q);
  }

  @Get('count')
  @ApiOperation({ operationId: 'count_conversations', summary: 'Count conversations (a bare integer)' })
  @ApiQueryFrom(ConversationCountQuerySchema)
  @ApiJson(200, CountSchema)
  count(@CurrentPrincipal() p: Principal, @Query(new ZodPipe(ConversationCountQuerySchema, 'query')) q: z.output<typeof ConversationCountQuerySchema>) {
    return this.conversations.count(p, q.status);
  }

  @Get()
  @ApiOperation({ operationId: 'batch_get_conversations', summary: 'Get several conversations by id (?ids=a&ids=b); null for unknown ids' })
  @ApiQueryFrom(ConversationBatchQuerySchema)
  @ApiJson(200, ConversationBatchSchema)
  batch(@CurrentPrincipal() p: Principal, @Query(new ZodPipe(ConversationBatchQuerySchema, 'query')) q: z.output<typeof ConversationBatchQuerySchema>) {
    return this.conversations.batch(p, q.ids, q.include_skills);
  }

  @Post()
  @ApiOperation({ operationId: 'start_conversation', summary: 'Start a conversation (201), or return the existing one for a known conversation_id (200)' })
  @ApiJsonBody(StartConversationRequestSchema, undefined, START_CONVERSATION_EXAMPLE)
  @ApiJson(201, ConversationInfoSchema, 'Created', CONVERSATION_INFO_EXAMPLE)
  async create(
    @CurrentPrincipal() p: Principal,
    @Body(new ZodPipe(StartConversationRequestSchema)) body: z.output<typeof StartConversationRequestSchema>,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const { created, info } = await this.conversations.create(p, body);
    if (created) await this.audit.record(p, 'create', 'conversation', info.id as string);
    reply.status(created ? 201 : 200);
    return info;
  }

  @Get(':conversation_id')
  @ApiOperation({ operationId: 'get_conversation', summary: 'Get a conversation' })
  @ApiParam({ name: 'conversation_id', description: 'UUID (dashed or 32-hex)' })
  @ApiQueryFrom(IncludeSkillsQuerySchema)
  @ApiJson(200, ConversationInfoSchema, undefined, CONVERSATION_INFO_EXAMPLE)
  get(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Query(new ZodPipe(IncludeSkillsQuerySchema, 'query')) q: z.output<typeof IncludeSkillsQuerySchema>,
  ) {
    return this.conversations.get(p, id, q.include_skills);
  }

  @Get(':conversation_id/runtime')
  @ApiOperation({ operationId: 'get_local_conversation_runtime', summary: "The conversation's runtime: its sandbox, whether it runs and answers" })
  @ApiJson(200, ConversationRuntimeInfoSchema)
  runtime(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    return this.conversations.runtime(p, id);
  }

  @Post(':conversation_id/runtime/reprovision')
  @HttpCode(200)
  @ApiOperation({ operationId: 'reprovision_local_conversation_runtime', summary: "A fresh runtime: the conversation's own sandbox gets a new executor (files kept); a shared one is started if it does not run" })
  @ApiJson(200, ConversationRuntimeInfoSchema)
  async reprovision(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    const info = await this.conversations.reprovision(p, id);
    await this.audit.record(p, 'reprovision', 'conversation', id);
    return info;
  }

  @Patch(':conversation_id')
  @ApiOperation({ operationId: 'update_conversation', summary: 'Update title and/or tags (tags replace all)' })
  @ApiJsonBody(UpdateConversationRequestSchema)
  @ApiJson(200, SuccessSchema)
  async update(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(UpdateConversationRequestSchema)) body: z.output<typeof UpdateConversationRequestSchema>,
  ) {
    await this.conversations.update(p, id, body);
    return SUCCESS;
  }

  @Delete(':conversation_id')
  @ApiOperation({ operationId: 'delete_conversation', summary: 'Delete a conversation and its events (404 if unknown)' })
  @ApiJson(200, SuccessSchema)
  async remove(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    await this.conversations.remove(p, id);
    await this.audit.record(p, 'delete', 'conversation', id);
    return SUCCESS;
  }

  @Post(':conversation_id/run')
  @HttpCode(200)
  @ApiOperation({ operationId: 'run_conversation', summary: 'Queue a run; 409 when already running' })
  @ApiJson(200, SuccessSchema)
  async run(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    await this.conversations.run(p, id);
    await this.audit.record(p, 'run', 'conversation', id);
    return SUCCESS;
  }

  @Post(':conversation_id/pause')
  @HttpCode(200)
  @ApiOperation({ operationId: 'pause_conversation', summary: 'Pause between agent steps (404 if unknown)' })
  @ApiJson(200, SuccessSchema)
  async pause(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    await this.conversations.require(p, id);
    await this.runs.pause(p.tenantId, id);
    await this.audit.record(p, 'pause', 'conversation', id);
    return SUCCESS;
  }

  @Post(':conversation_id/interrupt')
  @HttpCode(200)
  @ApiOperation({ operationId: 'interrupt_conversation', summary: 'Stop a running conversation now (404 if unknown)' })
  @ApiJson(200, SuccessSchema)
  async interrupt(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    await this.conversations.require(p, id);
    await this.runs.interrupt(p.tenantId, id);
    await this.audit.record(p, 'interrupt', 'conversation', id);
    return SUCCESS;
  }

  @Post(':conversation_id/secrets')
  @HttpCode(200)
  @ApiOperation({ operationId: 'update_conversation_secrets', summary: 'Add or replace conversation secrets (stored encrypted, never returned)' })
  @ApiJsonBody(SetSecretsRequestSchema)
  @ApiJson(200, SuccessSchema)
  async secrets(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(SetSecretsRequestSchema)) body: z.output<typeof SetSecretsRequestSchema>,
  ) {
    await this.conversations.setSecrets(p, id, body.secrets);
    return SUCCESS;
  }

  @Post(':conversation_id/confirmation_policy')
  @HttpCode(200)
  @ApiOperation({ operationId: 'set_conversation_confirmation_policy', summary: 'Set the confirmation policy' })
  @ApiJsonBody(SetConfirmationPolicyRequestSchema)
  @ApiJson(200, SuccessSchema)
  async confirmationPolicy(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(SetConfirmationPolicyRequestSchema)) body: z.output<typeof SetConfirmationPolicyRequestSchema>,
  ) {
    await this.conversations.setConfirmationPolicy(p, id, body.policy);
    return SUCCESS;
  }

  @Post(':conversation_id/security_analyzer')
  @HttpCode(200)
  @ApiOperation({ operationId: 'set_conversation_security_analyzer', summary: 'Set the security analyzer (null: none)' })
  @ApiJsonBody(SetSecurityAnalyzerRequestSchema)
  @ApiJson(200, SuccessSchema)
  async securityAnalyzer(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(SetSecurityAnalyzerRequestSchema)) body: z.output<typeof SetSecurityAnalyzerRequestSchema>,
  ) {
    await this.conversations.setSecurityAnalyzer(p, id, body.security_analyzer);
    return SUCCESS;
  }

  @Get(':conversation_id/agent_final_response')
  @ApiOperation({ operationId: 'get_conversation_agent_final_response', summary: "The agent's final answer: last finish message, else last agent message, else ''" })
  @ApiJson(200, FinalResponseSchema)
  async finalResponse(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    return { response: await this.conversations.finalResponse(p, id) };
  }
}
