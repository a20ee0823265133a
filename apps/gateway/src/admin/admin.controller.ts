import { Body, Controller, Delete, Get, Param, Patch, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  AdminPageQuerySchema,
  ApiKeyInfoSchema,
  ApiKeyPageSchema,
  AuditPageSchema,
  AuditQuerySchema,
  CreateApiKeyRequestSchema,
  CreatedApiKeySchema,
  CreateTenantRequestSchema,
  SuccessSchema,
  TenantInfoSchema,
  TenantPageSchema,
  UpdateTenantRequestSchema,
} from '@berth/contracts';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import type { AdminCaller } from '../audit/audit.service';
import { ApiJson, ApiJsonBody, ApiQueryFrom } from '../common/api-docs';
import { UuidPipe } from '../common/id.pipe';
import { ZodPipe } from '../common/zod-validation.pipe';
import { AdminKeyGuard, CurrentAdmin } from './admin-key.guard';
import { ApiKeysService } from './api-keys.service';
import { TenantsService } from './tenants.service';

const ERROR_REF = { $ref: '#/components/schemas/ErrorBody' } as never;
const TenantId = new UuidPipe('tenant_id');

/** The admin API (BERTH_ADMIN_API_KEYS): tenants, their API keys and quotas, and the audit log. */
@ApiTags('Admin')
@ApiSecurity('admin-api-key')
@UseGuards(AdminKeyGuard)
@Controller('api/admin')
export class AdminController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly keys: ApiKeysService,
    private readonly audit: AuditService,
  ) {}

  @Post('tenants')
  @ApiOperation({ summary: 'Create a tenant (409 when the name is taken)' })
  @ApiJsonBody(CreateTenantRequestSchema)
  @ApiJson(201, TenantInfoSchema, 'Created')
  @ApiResponse({ status: 409, description: 'Name taken', schema: ERROR_REF })
  async createTenant(@CurrentAdmin() admin: AdminCaller, @Body(new ZodPipe(CreateTenantRequestSchema)) body: z.output<typeof CreateTenantRequestSchema>) {
    const row = await this.tenants.create(body);
    await this.audit.record(admin, 'create', 'tenant', row.id, row.id);
    return this.tenants.info(row);
  }

  @Get('tenants')
  @ApiOperation({ summary: 'List tenants, newest first (keyset paging by page_id)' })
  @ApiQueryFrom(AdminPageQuerySchema)
  @ApiJson(200, TenantPageSchema)
  async listTenants(@Query(new ZodPipe(AdminPageQuerySchema, 'query')) q: z.output<typeof AdminPageQuerySchema>) {
    const { rows, nextPageId } = await this.tenants.list(q);
    return { items: rows.map((r) => this.tenants.info(r)), next_page_id: nextPageId };
  }

  @Get('tenants/:tenant_id')
  @ApiOperation({ summary: 'Get a tenant' })
  @ApiJson(200, TenantInfoSchema)
  async getTenant(@Param('tenant_id', TenantId) id: string) {
    return this.tenants.info(await this.tenants.require(id));
  }

  @Patch('tenants/:tenant_id')
  @ApiOperation({ summary: 'Rename a tenant or change its quotas (merged field by field; null = the default)' })
  @ApiJsonBody(UpdateTenantRequestSchema)
  @ApiJson(200, TenantInfoSchema)
  async updateTenant(
    @CurrentAdmin() admin: AdminCaller,
    @Param('tenant_id', TenantId) id: string,
    @Body(new ZodPipe(UpdateTenantRequestSchema)) body: z.output<typeof UpdateTenantRequestSchema>,
  ) {
    const row = await this.tenants.update(id, body);
    await this.audit.record(admin, 'update', 'tenant', id, id);
    return this.tenants.info(row);
  }

  @Delete('tenants/:tenant_id')
  @ApiOperation({ summary: 'Delete a tenant: its keys stop working, its sandboxes are destroyed, its data removed (409 for the default tenant)' })
  @ApiJson(200, SuccessSchema)
  @ApiResponse({ status: 409, description: 'The default tenant', schema: ERROR_REF })
  async deleteTenant(@CurrentAdmin() admin: AdminCaller, @Param('tenant_id', TenantId) id: string) {
    await this.tenants.remove(id);
    await this.audit.record(admin, 'delete', 'tenant', id, id);
    return { success: true };
  }

  @Post('tenants/:tenant_id/api-keys')
  @ApiOperation({ summary: 'Create an API key of the tenant; the key is in this answer only' })
  @ApiJsonBody(CreateApiKeyRequestSchema)
  @ApiJson(201, CreatedApiKeySchema, 'Created')
  async createKey(
    @CurrentAdmin() admin: AdminCaller,
    @Param('tenant_id', TenantId) tenantId: string,
    @Body(new ZodPipe(CreateApiKeyRequestSchema)) body: z.output<typeof CreateApiKeyRequestSchema>,
  ) {
    const { row, key } = await this.keys.create(tenantId, body);
    await this.audit.record(admin, 'create', 'api_key', row.id, tenantId);
    return { ...this.keys.info(row), key };
  }

  @Get('tenants/:tenant_id/api-keys')
  @ApiOperation({ summary: "List the tenant's API keys (prefix and last four only), newest first" })
  @ApiQueryFrom(AdminPageQuerySchema)
  @ApiJson(200, ApiKeyPageSchema)
  async listKeys(@Param('tenant_id', TenantId) tenantId: string, @Query(new ZodPipe(AdminPageQuerySchema, 'query')) q: z.output<typeof AdminPageQuerySchema>) {
    const { rows, nextPageId } = await this.keys.list(tenantId, q);
    return { items: rows.map((r) => this.keys.info(r)), next_page_id: nextPageId };
  }

  @Delete('tenants/:tenant_id/api-keys/:key_id')
  @ApiOperation({ summary: 'Revoke an API key: refused from the next request on, on every replica' })
  @ApiJson(200, ApiKeyInfoSchema)
  async revokeKey(@CurrentAdmin() admin: AdminCaller, @Param('tenant_id', TenantId) tenantId: string, @Param('key_id', new UuidPipe('key_id')) keyId: string) {
    const row = await this.keys.revoke(tenantId, keyId);
    await this.audit.record(admin, 'revoke', 'api_key', keyId, tenantId);
    return this.keys.info(row);
  }

  @Get('audit')
  @ApiOperation({ summary: 'The audit log, newest first: who created, ran, paused, interrupted, deleted what' })
  @ApiQueryFrom(AuditQuerySchema)
  @ApiJson(200, AuditPageSchema)
  listAudit(@Query(new ZodPipe(AuditQuerySchema, 'query')) q: z.output<typeof AuditQuerySchema>) {
    return this.audit.list(q);
  }
}
