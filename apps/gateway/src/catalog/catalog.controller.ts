import { Body, Controller, Get, HttpCode, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { SuccessSchema } from '@berth/contracts';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiQueryFrom } from '../common/api-docs';
import { ZodPipe } from '../common/zod-validation.pipe';

// The OpenHands shapes of these answers (contract §3.10-3.12 and the automation server Agent Canvas
// calls), for the OpenAPI document; Berth's are always the empty ones.
const SkillsRequestSchema = z
  .looseObject({
    load_public: z.boolean().optional(),
    load_user: z.boolean().optional(),
    load_project: z.boolean().optional(),
    load_org: z.boolean().optional(),
    project_dir: z.string().nullish(),
  })
  .meta({ id: 'SkillsRequest' });
const SkillsSchema = z
  .object({ skills: z.array(z.looseObject({ name: z.string() })), sources: z.record(z.string(), z.number().int()) })
  .meta({ id: 'SkillsResponse' });
const InstalledPluginsSchema = z.object({ plugins: z.array(z.looseObject({ name: z.string() })) }).meta({ id: 'InstalledPluginsListResponse' });
const WorkspacesSchema = z
  .object({
    workspaces: z.array(z.looseObject({ id: z.string(), name: z.string(), path: z.string() })),
    workspaceParents: z.array(z.looseObject({ id: z.string(), name: z.string(), path: z.string() })),
  })
  .meta({ id: 'WorkspacesListResponse', description: 'OpenHands serializes workspace_parents by its alias, workspaceParents.' });
const CanvasExtensionsSchema = z
  .object({ canvas_extensions: z.array(z.looseObject({ name: z.string() })) })
  .meta({ id: 'InstalledCanvasExtensionsListResponse' });
const AutomationSdkVersionSchema = z.object({ sdk_version: z.string().nullable() }).meta({ id: 'AutomationSdkVersion' });
const AutomationHealthSchema = z.object({ status: z.enum(['ok', 'error']), message: z.string() }).meta({ id: 'AutomationHealth' });
const TelemetryConsentSchema = z
  .looseObject({ consent_granted: z.boolean(), frontend_distinct_id: z.string().nullish() })
  .meta({ id: 'TelemetryConsentRequest' });
const AutomationsQuerySchema = z.looseObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});
const AutomationsSchema = z.object({ automations: z.array(z.looseObject({ id: z.string() })), total: z.number().int() }).meta({ id: 'AutomationsResponse' });
const ProvidersSchema = z.object({ providers: z.array(z.string()) }).meta({ id: 'LLMProvidersResponse' });
const ModelsQuerySchema = z.looseObject({ provider: z.string().max(200).optional() });
const ModelsSchema = z.object({ models: z.array(z.string()) }).meta({ id: 'LLMModelsResponse' });
const VerifiedModelsSchema = z.object({ models: z.record(z.string(), z.array(z.string())) }).meta({ id: 'LLMVerifiedModelsResponse' });
const SubscriptionStatusSchema = z
  .object({ vendor: z.string(), connected: z.boolean(), account_email: z.string().nullable(), expires_at: z.number().int().nullable() })
  .meta({ id: 'LLMSubscriptionStatus' });
const SubscriptionModelsSchema = z.object({ vendor: z.string(), models: z.array(z.string()) }).meta({ id: 'LLMSubscriptionModels' });

/**
 * Routes Agent Canvas calls for features Berth does not have yet (skills, plugins,
 * saved workspaces, canvas extensions, automations, the LLM catalog). Each answers OpenHands' shape,
 * empty, so the UI shows "nothing here" instead of an error.
 */
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api')
export class CatalogController {
  @Post('skills')
  @HttpCode(200)
  @ApiTags('Skills')
  @ApiOperation({ operationId: 'get_skills', summary: 'Skills available to the agent: none (Berth loads no skills yet)' })
  @ApiJsonBody(SkillsRequestSchema)
  @ApiJson(200, SkillsSchema)
  skills(@Body(new ZodPipe(SkillsRequestSchema)) _request: z.output<typeof SkillsRequestSchema>) {
    return { skills: [], sources: {} };
  }

  @Get('plugins/installed')
  @ApiTags('Plugins')
  @ApiOperation({ operationId: 'list_installed_plugins_endpoint', summary: 'Installed plugins: none' })
  @ApiJson(200, InstalledPluginsSchema)
  installedPlugins() {
    return { plugins: [] };
  }

  @Get('workspaces')
  @ApiTags('Workspaces')
  @ApiOperation({ operationId: 'list_workspaces', summary: 'Saved workspaces for the GUI picker: none (every conversation has its own sandbox)' })
  @ApiJson(200, WorkspacesSchema)
  workspaces() {
    return { workspaces: [], workspaceParents: [] };
  }

  @Get('canvas-extensions/installed')
  @ApiTags('Canvas extensions')
  @ApiOperation({ operationId: 'list_installed_canvas_extensions_endpoint', summary: 'Installed canvas extensions: none' })
  @ApiJson(200, CanvasExtensionsSchema)
  canvasExtensions() {
    return { canvas_extensions: [] };
  }

  @Get('automation/sdk-version')
  @ApiTags('Automations')
  @ApiOperation({ summary: 'SDK version of the automation server: none (Berth has no automation server)' })
  @ApiJson(200, AutomationSdkVersionSchema)
  automationSdkVersion() {
    return { sdk_version: null };
  }

  @Get('automation/health')
  @ApiTags('Automations')
  @ApiOperation({ summary: 'Automation server health: "error", there is none (the GUI then shows automations as not set up)' })
  @ApiJson(200, AutomationHealthSchema)
  automationHealth() {
    return { status: 'error', message: 'Automations are not available on this server' };
  }

  @Post('automation/v1/telemetry/consent')
  @HttpCode(200)
  @ApiTags('Automations')
  @ApiOperation({ summary: 'Telemetry consent: accepted, and moot (Berth sends no telemetry)' })
  @ApiJsonBody(TelemetryConsentSchema)
  @ApiJson(200, SuccessSchema)
  telemetryConsent(@Body(new ZodPipe(TelemetryConsentSchema)) _consent: z.output<typeof TelemetryConsentSchema>) {
    return { success: true };
  }

  @Get('automation/v1')
  @ApiTags('Automations')
  @ApiOperation({ summary: 'Automations: none' })
  @ApiQueryFrom(AutomationsQuerySchema)
  @ApiJson(200, AutomationsSchema)
  automations(@Query(new ZodPipe(AutomationsQuerySchema, 'query')) _page: z.output<typeof AutomationsQuerySchema>) {
    return { automations: [], total: 0 };
  }

  @Get('llm/providers')
  @ApiTags('LLM')
  @ApiOperation({ operationId: 'list_providers', summary: 'LLM providers: openai, i.e. any OpenAI-compatible endpoint (set llm.base_url for others)' })
  @ApiJson(200, ProvidersSchema)
  llmProviders() {
    return { providers: ['openai'] };
  }

  @Get('llm/models')
  @ApiTags('LLM')
  @ApiOperation({ operationId: 'list_models', summary: 'Known models: none listed (Berth does not know what an endpoint serves; any model name is accepted)' })
  @ApiQueryFrom(ModelsQuerySchema)
  @ApiJson(200, ModelsSchema)
  llmModels(@Query(new ZodPipe(ModelsQuerySchema, 'query')) _filter: z.output<typeof ModelsQuerySchema>) {
    return { models: [] };
  }

  @Get('llm/models/verified')
  @ApiTags('LLM')
  @ApiOperation({ operationId: 'list_verified_models', summary: 'Verified models by provider: none' })
  @ApiJson(200, VerifiedModelsSchema)
  llmVerifiedModels() {
    return { models: {} };
  }

  @Get('llm/subscription/openai/status')
  @ApiTags('LLM')
  @ApiOperation({ operationId: 'get_openai_subscription_status', summary: 'OpenAI subscription sign-in: not connected (not supported; use an API key)' })
  @ApiJson(200, SubscriptionStatusSchema)
  subscriptionStatus() {
    return { vendor: 'openai', connected: false, account_email: null, expires_at: null };
  }

  @Get('llm/subscription/openai/models')
  @ApiTags('LLM')
  @ApiOperation({ operationId: 'list_openai_subscription_models', summary: 'Models of an OpenAI subscription: none' })
  @ApiJson(200, SubscriptionModelsSchema)
  subscriptionModels() {
    return { vendor: 'openai', models: [] };
  }
}
