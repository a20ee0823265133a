import { Body, Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { HooksRequestSchema, HooksResponseSchema } from '@berth/contracts';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody } from '../common/api-docs';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { HooksService } from './hooks.service';

@ApiTags('Hooks')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/hooks')
export class HooksController {
  constructor(private readonly hooks: HooksService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ operationId: 'get_hooks', summary: "A workspace folder's project hooks (`.openhands/hooks.json`), or null when it has none" })
  @ApiJsonBody(HooksRequestSchema)
  @ApiJson(200, HooksResponseSchema)
  async load(@CurrentPrincipal() p: Principal, @Body(new ZodPipe(HooksRequestSchema)) body: z.output<typeof HooksRequestSchema>) {
    return { hook_config: await this.hooks.load(p, body.project_dir) };
  }
}
