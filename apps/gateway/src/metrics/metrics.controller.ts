import { Controller, Get, Headers, Inject, Res, UnauthorizedException } from '@nestjs/common';
import { ApiExcludeEndpoint } from '@nestjs/swagger';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { metricsAccessAllowed, scrapeMetrics } from '@berth/metrics';
import type { FastifyReply } from 'fastify';

/** Prometheus' scrape target: open as /health, or behind BERTH_METRICS_TOKEN; not part of the tenant API. */
@Controller()
export class MetricsController {
  constructor(@Inject(BERTH_CONFIG) private readonly config: BerthConfig) {}

  @Get('metrics')
  @ApiExcludeEndpoint()
  async metrics(@Headers('authorization') authorization: string | undefined, @Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    if (!metricsAccessAllowed(this.config.metricsToken, authorization)) throw new UnauthorizedException('Unauthorized');
    const { contentType, body } = await scrapeMetrics();
    reply.header('content-type', contentType);
    return body;
  }
}
