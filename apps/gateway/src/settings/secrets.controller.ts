import { Body, Controller, Delete, Get, Param, Put, Query, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  SecretCreateRequestSchema,
  SecretDeletedSchema,
  SecretItemSchema,
  SecretNameSchema,
  SecretPathSchema,
  SecretsListSchema,
  SecretValueSchema,
} from '@berth/contracts';
import type { SecretCreateRequest } from '@berth/contracts';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiQueryFrom, schemaOf } from '../common/api-docs';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { SecretsService } from './secrets.service';

const NamePipe = new ZodPipe(SecretPathSchema, 'path');
const ListQuerySchema = z.looseObject({
  agent_profile_id: z.string().max(128).optional().describe("Only the secrets this agent profile's secret_refs allow"),
});
const NameParam = ApiParam({ name: 'name', schema: schemaOf(SecretNameSchema) as never });

@ApiTags('Settings')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/settings/secrets')
export class SecretsController {
  constructor(private readonly secrets: SecretsService) {}

  @Get()
  @ApiOperation({ operationId: 'list_secrets', summary: "The tenant's secrets: names and descriptions, never values" })
  @ApiQueryFrom(ListQuerySchema)
  @ApiJson(200, SecretsListSchema)
  list(@CurrentPrincipal() p: Principal, @Query(new ZodPipe(ListQuerySchema, 'query')) query: z.output<typeof ListQuerySchema>) {
    return this.secrets.list(p, query.agent_profile_id);
  }

  @Get(':name')
  @ApiOperation({ operationId: 'get_secret_value', summary: "A secret's value as text/plain (the server's own keys only: 403 for tenant keys)" })
  @NameParam
  @ApiJson(200, SecretValueSchema)
  async value(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }, @Res({ passthrough: true }) reply: FastifyReply) {
    const value = await this.secrets.value(p, name);
    reply.type('text/plain; charset=utf-8');
    return value;
  }

  @Put()
  @ApiOperation({ operationId: 'create_secret', summary: 'Create or replace a secret (encrypted at rest)' })
  @ApiJsonBody(SecretCreateRequestSchema)
  @ApiJson(200, SecretItemSchema)
  upsert(@CurrentPrincipal() p: Principal, @Body(new ZodPipe(SecretCreateRequestSchema)) body: SecretCreateRequest) {
    return this.secrets.upsert(p, body);
  }

  @Delete(':name')
  @ApiOperation({ operationId: 'delete_secret', summary: 'Delete a secret' })
  @NameParam
  @ApiJson(200, SecretDeletedSchema)
  async remove(@CurrentPrincipal() p: Principal, @Param(NamePipe) { name }: { name: string }) {
    await this.secrets.remove(p, name);
    return { deleted: true };
  }
}
