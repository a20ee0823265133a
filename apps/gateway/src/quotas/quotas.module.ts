import { Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, closeOnShutdown } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { QuotaService } from './quota.service';
import { InProcessSharedState, RedisSharedState, SharedState } from './shared-state';
import { TenancyEpoch } from './tenancy-epoch';

@Global()
@Module({
  providers: [
    {
      provide: SharedState,
      inject: [BERTH_CONFIG],
      useFactory: (config: BerthConfig) => (config.redisUrl ? new RedisSharedState(config.redisUrl, config.queuePrefix) : new InProcessSharedState()),
    },
    closeOnShutdown<SharedState>(SharedState, (state) => state.close()),
    TenancyEpoch,
    QuotaService,
  ],
  exports: [SharedState, TenancyEpoch, QuotaService],
})
export class QuotasModule {}
