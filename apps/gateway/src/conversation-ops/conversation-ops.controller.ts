import { Body, Controller, HttpCode, Param, PipeTransform, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  AskAgentRequestSchema,
  AskAgentResponseSchema,
  ConversationInfoSchema,
  ForkConversationRequestSchema,
  IncludeSkillsQuerySchema,
  SuccessSchema,
  SwitchLlmRequestSchema,
  SwitchProfileRequestSchema,
} from '@berth/contracts';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiQueryFrom } from '../common/api-docs';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { ConversationOpsService } from './conversation-ops.service';

const SUCCESS = { success: true };

/** The reference's fork takes no body at all as the defaults. */
class DefaultEmptyBody implements PipeTransform {
  transform(value: unknown): unknown {
    return value === undefined ? {} : value;
  }
}

@ApiTags('Conversations')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/conversations')
export class ConversationOpsController {
  constructor(
    private readonly ops: ConversationOpsService,
    private readonly audit: AuditService,
  ) {}

  @Post(':conversation_id/ask_agent')
  @HttpCode(200)
  @ApiOperation({ operationId: 'ask_agent', summary: 'Ask the agent a question about the conversation so far (no event, no state change)' })
  @ApiJsonBody(AskAgentRequestSchema)
  @ApiJson(200, AskAgentResponseSchema)
  async ask(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(AskAgentRequestSchema)) body: z.output<typeof AskAgentRequestSchema>,
  ) {
    return { response: await this.ops.ask(p, id, body.question) };
  }

  @Post(':conversation_id/switch_llm')
  @HttpCode(200)
  @ApiOperation({ operationId: 'switch_conversation_llm', summary: "Replace the agent's LLM; the run's next step uses it (the key stored encrypted)" })
  @ApiJsonBody(SwitchLlmRequestSchema)
  @ApiJson(200, SuccessSchema)
  async switchLlm(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(SwitchLlmRequestSchema)) body: z.output<typeof SwitchLlmRequestSchema>,
  ) {
    await this.ops.switchLlm(p, id, body.llm);
    await this.audit.record(p, 'update', 'conversation', id);
    return SUCCESS;
  }

  @Post(':conversation_id/switch_profile')
  @HttpCode(200)
  @ApiOperation({ operationId: 'switch_conversation_profile', summary: "Switch the agent's LLM to one of the tenant's LLM profiles (404 if it has none of that name)" })
  @ApiJsonBody(SwitchProfileRequestSchema)
  @ApiJson(200, SuccessSchema)
  async switchProfile(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(SwitchProfileRequestSchema)) body: z.output<typeof SwitchProfileRequestSchema>,
  ) {
    await this.ops.switchProfile(p, id, body.profile_name);
    await this.audit.record(p, 'update', 'conversation', id);
    return SUCCESS;
  }

  @Post(':conversation_id/fork')
  @ApiOperation({ operationId: 'fork_conversation', summary: "Fork: a new idle conversation with a copy of the events (up to from_event_id) and of the sandbox's workspace files where the driver can copy them" })
  @ApiJsonBody(ForkConversationRequestSchema)
  @ApiQueryFrom(IncludeSkillsQuerySchema)
  @ApiJson(201, ConversationInfoSchema, 'Forked conversation created')
  async fork(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new DefaultEmptyBody(), new ZodPipe(ForkConversationRequestSchema)) body: z.output<typeof ForkConversationRequestSchema>,
    @Query(new ZodPipe(IncludeSkillsQuerySchema, 'query')) q: z.output<typeof IncludeSkillsQuerySchema>,
  ) {
    const fork = await this.ops.fork(p, id, body, q.include_skills);
    await this.audit.record(p, 'create', 'conversation', fork.id);
    return fork.info;
  }
}
