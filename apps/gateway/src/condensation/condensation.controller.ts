import { Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { SuccessSchema } from '@berth/contracts';
import { AuditService } from '../audit/audit.service';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson } from '../common/api-docs';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { CondensationService } from './condensation.service';

@ApiTags('Conversations')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/conversations')
export class CondensationController {
  constructor(
    private readonly condensation: CondensationService,
    private readonly audit: AuditService,
  ) {}

  @Post(':conversation_id/condense')
  @HttpCode(200)
  @ApiOperation({ operationId: 'condense_conversation', summary: "Condense the conversation's history now (409 when its agent has no condenser that takes requests)" })
  @ApiJson(200, SuccessSchema)
  async condense(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string) {
    await this.condensation.condense(p, id);
    await this.audit.record(p, 'condense', 'conversation', id);
    return { success: true };
  }
}
