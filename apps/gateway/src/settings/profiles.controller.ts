import { Body, Controller, Delete, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  ActivateProfileSchema,
  ProfileDetailSchema,
  ProfileListSchema,
  ProfileMutationSchema,
  ProfileNameSchema,
  ProfilePathSchema,
  RenameProfileRequestSchema,
  SaveProfileRequestSchema,
  ValidateProfileRequestSchema,
  ValidateProfileSchema,
} from '@berth/contracts';
import type { SaveProfileRequest, ValidateProfileRequest } from '@berth/contracts';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, schemaOf } from '../common/api-docs';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { ExposeSecrets } from './expose-secrets.decorator';
import type { SecretExposure } from './expose-secrets.decorator';
import { LlmProfilesService } from './llm-profiles.service';
import { SettingsService } from './settings.service';

const NamePipe = new ZodPipe(ProfilePathSchema, 'path');
const NameParam = ApiParam({ name: 'name', schema: schemaOf(ProfileNameSchema) as never });

@ApiTags('Profiles')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/profiles')
export class ProfilesController {
  constructor(
    private readonly profiles: LlmProfilesService,
    private readonly settings: SettingsService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'list_profiles', summary: "The tenant's LLM profiles and the active one" })
  @ApiJson(200, ProfileListSchema)
  list(@CurrentPrincipal() p: Principal) {
    return this.profiles.list(p);
  }

  @Get(':name')
  @ApiOperation({ operationId: 'get_profile', summary: "A profile's LLM configuration; config.api_key is null unless X-Expose-Secrets asks for it" })
  @NameParam
  @ApiJson(200, ProfileDetailSchema)
  get(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }, @ExposeSecrets() exposure: SecretExposure) {
    return this.profiles.get(p, name, exposure);
  }

  @Post(':name')
  @ApiOperation({ operationId: 'save_profile', summary: 'Save an LLM configuration under this name (replaces a profile of that name)' })
  @NameParam
  @ApiJsonBody(SaveProfileRequestSchema)
  @ApiJson(201, ProfileMutationSchema, 'Saved')
  async save(
    @CurrentPrincipal() p: Principal,
    @Param(NamePipe) { name }: { name: string },
    @Body(new ZodPipe(SaveProfileRequestSchema)) body: SaveProfileRequest,
  ) {
    await this.profiles.save(p, name, body);
    return { name, message: `Profile '${name}' saved` };
  }

  @Post(':name/validate')
  @HttpCode(200)
  @ApiOperation({ operationId: 'validate_profile', summary: 'Pre-flight a draft LLM configuration: one 1-token completion, no retries, at most 15 s (nothing is saved)' })
  @NameParam
  @ApiJsonBody(ValidateProfileRequestSchema)
  @ApiJson(200, ValidateProfileSchema)
  validate(
    @CurrentPrincipal() p: Principal,
    @Param(NamePipe) { name }: { name: string },
    @Body(new ZodPipe(ValidateProfileRequestSchema)) body: ValidateProfileRequest,
  ) {
    return this.profiles.validate(p, name, body);
  }

  @Delete(':name')
  @ApiOperation({ operationId: 'delete_profile', summary: 'Delete a profile (idempotent); the active one stops being active' })
  @NameParam
  @ApiJson(200, ProfileMutationSchema)
  async remove(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }) {
    await this.profiles.remove(p, name);
    return { name, message: `Profile '${name}' deleted` };
  }

  @Post(':name/rename')
  @HttpCode(200)
  @ApiOperation({ operationId: 'rename_profile', summary: 'Rename a profile (409 if the new name is taken); the active pointer follows' })
  @NameParam
  @ApiJsonBody(RenameProfileRequestSchema)
  @ApiJson(200, ProfileMutationSchema)
  async rename(
    @CurrentPrincipal() p: Principal,
    @Param(NamePipe) { name }: { name: string },
    @Body(new ZodPipe(RenameProfileRequestSchema)) { new_name }: z.output<typeof RenameProfileRequestSchema>,
  ) {
    await this.profiles.rename(p, name, new_name);
    return { name: new_name, message: name === new_name ? `Profile '${name}' unchanged (same name)` : `Profile '${name}' renamed to '${new_name}'` };
  }

  @Post(':name/activate')
  @HttpCode(200)
  @ApiOperation({ operationId: 'activate_profile', summary: 'Activate a profile: its LLM becomes agent_settings.llm' })
  @NameParam
  @ApiJson(200, ActivateProfileSchema)
  async activate(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }) {
    await this.settings.activateProfile(p, name);
    return { name, message: `Profile '${name}' activated and applied to current settings`, llm_applied: true };
  }
}
