import { Body, Controller, Delete, Get, Param, Patch, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  LlmBalanceSchema,
  ProviderConnectionCreateRequestSchema,
  ProviderConnectionPathSchema,
  ProviderConnectionSchema,
  ProviderConnectionUpdateRequestSchema,
} from '@berth/contracts';
import type { ProviderConnectionCreateRequest, ProviderConnectionUpdateRequest } from '@berth/contracts';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody } from '../common/api-docs';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { ProviderConnectionsService } from './provider-connections.service';

const IdPipe = new ZodPipe(ProviderConnectionPathSchema, 'path');
const IdParam = ApiParam({ name: 'connection_id', schema: { type: 'string' } });

/** What GET /api/llm/balance answers: no balance is known (Berth asks no provider for one). */
const UNKNOWN_BALANCE: z.output<typeof LlmBalanceSchema> = {
  provider: null,
  limit: null,
  limit_remaining: null,
  usage: null,
  usage_daily: null,
  usage_weekly: null,
  usage_monthly: null,
  is_free_tier: false,
};

@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/llm')
export class LlmController {
  constructor(private readonly connections: ProviderConnectionsService) {}

  @Get('provider-connections')
  @ApiTags('LLM Provider Connections')
  @ApiOperation({ operationId: 'list_provider_connections', summary: "The tenant's provider connections (shared LLM keys); keys are never shown" })
  @ApiJson(200, z.array(ProviderConnectionSchema))
  list(@CurrentPrincipal() p: Principal) {
    return this.connections.list(p);
  }

  @Post('provider-connections')
  @ApiTags('LLM Provider Connections')
  @ApiOperation({ operationId: 'create_provider_connection', summary: 'Add a provider connection (its api_key encrypted at rest)' })
  @ApiJsonBody(ProviderConnectionCreateRequestSchema)
  @ApiJson(201, ProviderConnectionSchema, 'Created')
  create(@CurrentPrincipal() p: Principal, @Body(new ZodPipe(ProviderConnectionCreateRequestSchema)) body: ProviderConnectionCreateRequest) {
    return this.connections.create(p, body);
  }

  @Patch('provider-connections/:connection_id')
  @ApiTags('LLM Provider Connections')
  @ApiOperation({ operationId: 'update_provider_connection', summary: 'Change a provider connection; a new api_key reaches every linked LLM profile at its next activation or launch' })
  @IdParam
  @ApiJsonBody(ProviderConnectionUpdateRequestSchema)
  @ApiJson(200, ProviderConnectionSchema)
  update(
    @CurrentPrincipal() p: Principal,
    @Param(IdPipe) { connection_id }: { connection_id: string },
    @Body(new ZodPipe(ProviderConnectionUpdateRequestSchema)) body: ProviderConnectionUpdateRequest,
  ) {
    return this.connections.update(p, connection_id, body);
  }

  @Delete('provider-connections/:connection_id')
  @ApiTags('LLM Provider Connections')
  @ApiOperation({ operationId: 'delete_provider_connection', summary: 'Delete a provider connection (409 while an LLM profile or the settings use it)' })
  @IdParam
  @ApiJson(200, ProviderConnectionSchema)
  remove(@CurrentPrincipal() p: Principal, @Param(IdPipe) { connection_id }: { connection_id: string }) {
    return this.connections.remove(p, connection_id);
  }

  @Get('balance')
  @ApiTags('LLM')
  @ApiOperation({ summary: "The LLM provider's balance: not known (provider null), so clients show none" })
  @ApiJson(200, LlmBalanceSchema)
  balance() {
    return UNKNOWN_BALANCE;
  }
}
