import { Body, Controller, Get, Patch, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { SettingsFormSchema, SettingsResponseSchema, SettingsUpdateRequestSchema } from '@berth/contracts';
import type { SettingsUpdateRequest } from '@berth/contracts';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody } from '../common/api-docs';
import { SETTINGS_EXAMPLE, SETTINGS_UPDATE_EXAMPLE } from '../common/api-examples';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { ExposeSecrets } from './expose-secrets.decorator';
import type { SecretExposure } from './expose-secrets.decorator';
import { SettingsService } from './settings.service';

@ApiTags('Settings')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/settings')
export class SettingsController {
  constructor(private readonly settings: SettingsService) {}

  @Get('agent-schema')
  @ApiOperation({ operationId: 'get_agent_settings_schema', summary: 'The agent settings form: the fields Berth supports, by section' })
  @ApiJson(200, SettingsFormSchema)
  agentSchema() {
    return this.settings.agentForm;
  }

  @Get('conversation-schema')
  @ApiOperation({ operationId: 'get_conversation_settings_schema', summary: 'The conversation settings form' })
  @ApiJson(200, SettingsFormSchema)
  conversationSchema() {
    return this.settings.conversationForm;
  }

  @Get()
  @ApiOperation({ operationId: 'get_settings', summary: "The tenant's settings; the LLM api_key is masked unless X-Expose-Secrets asks for it" })
  @ApiJson(200, SettingsResponseSchema, undefined, SETTINGS_EXAMPLE)
  get(@CurrentPrincipal() p: Principal, @ExposeSecrets() exposure: SecretExposure) {
    return this.settings.get(p, exposure);
  }

  @Patch()
  @ApiOperation({ operationId: 'update_settings', summary: 'Change settings with merge patches (all or nothing); the answer shows no secret' })
  @ApiJsonBody(SettingsUpdateRequestSchema, undefined, SETTINGS_UPDATE_EXAMPLE)
  @ApiJson(200, SettingsResponseSchema, undefined, SETTINGS_EXAMPLE)
  update(@CurrentPrincipal() p: Principal, @Body(new ZodPipe(SettingsUpdateRequestSchema)) body: SettingsUpdateRequest) {
    return this.settings.update(p, body);
  }
}
