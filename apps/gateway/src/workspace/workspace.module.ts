import { Module } from '@nestjs/common';
import { WorkspaceController } from './workspace.controller';
import { WorkspaceProxyService } from './workspace-proxy.service';
import { WorkspaceRoutingService } from './workspace-routing.service';

@Module({
  controllers: [WorkspaceController],
  providers: [WorkspaceProxyService, WorkspaceRoutingService],
  exports: [WorkspaceProxyService, WorkspaceRoutingService],
})
export class WorkspaceModule {}
