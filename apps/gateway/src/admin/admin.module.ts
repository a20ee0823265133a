import { Module } from '@nestjs/common';
import { AdminController } from './admin.controller';
import { AdminKeyGuard } from './admin-key.guard';
import { ApiKeysService } from './api-keys.service';
import { TenantsService } from './tenants.service';

@Module({
  controllers: [AdminController],
  providers: [AdminKeyGuard, TenantsService, ApiKeysService],
})
export class AdminModule {}
