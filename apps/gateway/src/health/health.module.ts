import { Global, Module } from '@nestjs/common';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { ServerInfoService } from './server-info.service';

@Global()
@Module({
  controllers: [HealthController],
  providers: [ServerInfoService, HealthService],
  exports: [ServerInfoService],
})
export class HealthModule {}
