import { Body, Controller, Delete, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  ActivateAgentProfileSchema,
  AgentProfileDetailSchema,
  AgentProfileDiagnosticsSchema,
  AgentProfileIdPathSchema,
  AgentProfileListSchema,
  AgentProfileMutationSchema,
  AgentProfilePathSchema,
  AgentProfileSchema,
  MaterializeAgentProfileRequestSchema,
  ProfileNameSchema,
  RenameAgentProfileRequestSchema,
} from '@berth/contracts';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, schemaOf } from '../common/api-docs';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { AgentProfilesService } from './agent-profiles.service';

const NamePipe = new ZodPipe(AgentProfilePathSchema, 'path');
const NameParam = ApiParam({ name: 'name', schema: schemaOf(ProfileNameSchema) as never });
const ProfileBodySchema = z.record(z.string(), z.unknown());
type MaterializeRequest = z.output<typeof MaterializeAgentProfileRequestSchema>;

/** The materialize body is optional (OpenHands: `body: … | None = None`): none previews the stored profile. */
class OptionalBodyPipe extends ZodPipe<typeof MaterializeAgentProfileRequestSchema> {
  constructor() {
    super(MaterializeAgentProfileRequestSchema);
  }

  override transform(value: unknown): MaterializeRequest {
    return value === undefined || value === null ? { profile: null } : super.transform(value);
  }
}

@ApiTags('Agent Profiles')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/agent-profiles')
export class AgentProfilesController {
  constructor(private readonly profiles: AgentProfilesService) {}

  @Get()
  @ApiOperation({ operationId: 'list_agent_profiles', summary: 'The agent profiles and the active one ("default", made from the settings, when none is)' })
  @ApiJson(200, AgentProfileListSchema)
  list(@CurrentPrincipal() p: Principal) {
    return this.profiles.list(p);
  }

  @Get(':name')
  @ApiOperation({ operationId: 'get_agent_profile', summary: 'An agent profile (it holds no secret)' })
  @NameParam
  @ApiJson(200, AgentProfileDetailSchema)
  get(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }) {
    return this.profiles.get(p, name);
  }

  @Post(':name')
  @ApiOperation({ operationId: 'save_agent_profile', summary: 'Save an agent profile under this name (an overwrite keeps its id and bumps its revision)' })
  @NameParam
  @ApiJsonBody(AgentProfileSchema)
  @ApiJson(201, AgentProfileMutationSchema, 'Saved')
  async save(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }, @Body(new ZodPipe(ProfileBodySchema)) body: Record<string, unknown>) {
    await this.profiles.save(p, name, body);
    return { name, message: `Agent profile '${name}' saved` };
  }

  @Delete(':name')
  @ApiOperation({ operationId: 'delete_agent_profile', summary: 'Delete an agent profile (idempotent); "default" becomes active if it was' })
  @NameParam
  @ApiJson(200, AgentProfileMutationSchema)
  async remove(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }) {
    await this.profiles.remove(p, name);
    return { name, message: `Agent profile '${name}' deleted` };
  }

  @Post(':name/rename')
  @HttpCode(200)
  @ApiOperation({ operationId: 'rename_agent_profile', summary: 'Rename an agent profile (409 if the name is taken); its id, and so the active pointer, stay' })
  @NameParam
  @ApiJsonBody(RenameAgentProfileRequestSchema)
  @ApiJson(200, AgentProfileMutationSchema)
  async rename(
    @CurrentPrincipal() p: Principal,
    @Param(NamePipe) { name }: { name: string },
    @Body(new ZodPipe(RenameAgentProfileRequestSchema)) { new_name }: z.output<typeof RenameAgentProfileRequestSchema>,
  ) {
    await this.profiles.rename(p, name, new_name);
    const message = name === new_name ? `Agent profile '${name}' unchanged (same name)` : `Agent profile '${name}' renamed to '${new_name}'`;
    return { name: new_name, message };
  }

  @Post(':profile_id/activate')
  @HttpCode(200)
  @ApiOperation({ operationId: 'activate_agent_profile', summary: 'Make the profile with this id the active one (the pointer only: agent_settings do not change)' })
  @ApiParam({ name: 'profile_id', schema: schemaOf(AgentProfileIdPathSchema.shape.profile_id) as never })
  @ApiJson(200, ActivateAgentProfileSchema)
  async activate(@CurrentPrincipal() p: Principal, @Param(new ZodPipe(AgentProfileIdPathSchema, 'path')) { profile_id }: { profile_id: string }) {
    await this.profiles.activate(p, profile_id);
    return { id: profile_id, message: `Agent profile '${profile_id}' activated`, agent_settings_applied: false };
  }

  @Post(':name/materialize')
  @HttpCode(200)
  @ApiOperation({ operationId: 'materialize_agent_profile', summary: 'Preview a launch of the stored profile (or of a draft): dangling references are reported, not raised' })
  @NameParam
  @ApiBody({ required: false, schema: schemaOf(MaterializeAgentProfileRequestSchema) as never })
  @ApiJson(200, AgentProfileDiagnosticsSchema)
  materialize(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }, @Body(new OptionalBodyPipe()) body: MaterializeRequest) {
    return this.profiles.materialize(p, name, body.profile);
  }
}
