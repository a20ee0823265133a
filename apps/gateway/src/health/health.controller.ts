import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ServerInfoSchema, StatusSchema } from '@berth/contracts';
import type { FastifyReply } from 'fastify';
import { ApiJson } from '../common/api-docs';
import { OUTAGE_RETRY_AFTER_S } from '../common/outage';
import { HealthService } from './health.service';
import { ServerInfoService } from './server-info.service';

/** Public probes and server details (no API key, as in OpenHands). */
@ApiTags('Server details')
@Controller()
export class HealthController {
  constructor(
    private readonly serverInfo: ServerInfoService,
    private readonly health: HealthService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'get_server_info', summary: 'Server details (same as /server_info)' })
  @ApiJson(200, ServerInfoSchema)
  root() {
    return this.serverInfo.info();
  }

  @Get('alive')
  @ApiOperation({ summary: 'Liveness probe' })
  @ApiJson(200, StatusSchema)
  alive() {
    return { status: 'ok' };
  }

  @Get('health')
  @ApiOperation({ operationId: 'health', summary: 'Liveness probe used by OpenHands clients' })
  @ApiJson(200, StatusSchema)
  healthz() {
    return { status: 'ok' };
  }

  @Get('ready')
  @HttpCode(200)
  @ApiOperation({ summary: 'Readiness: 503 until the database is reachable and migrated (and Redis, when configured)' })
  @ApiJson(200, StatusSchema)
  async ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const problem = await this.health.problem();
    if (problem) {
      reply.status(503).header('Retry-After', String(OUTAGE_RETRY_AFTER_S));
      return { status: 'initializing', message: problem };
    }
    return { status: 'ready' };
  }

  @Get('server_info')
  @ApiOperation({ operationId: 'get_server_info', summary: 'Uptime, idle time, version and tools' })
  @ApiJson(200, ServerInfoSchema)
  info() {
    return this.serverInfo.info();
  }

  @Get('favicon.ico')
  @ApiExcludeEndpoint()
  @HttpCode(204)
  favicon() {
    return undefined;
  }
}
