import { Module } from '@nestjs/common';
import { ConversationRuntimeController, TrajectoryController, VSCodeController } from './conversation-runtime.controller';
import { TrajectoryService } from './trajectory.service';
import { WorkspaceController } from './workspace.controller';
import { WorkspaceProxyService } from './workspace-proxy.service';
import { WorkspaceRoutingService } from './workspace-routing.service';

@Module({
  controllers: [WorkspaceController, ConversationRuntimeController, TrajectoryController, VSCodeController],
  providers: [WorkspaceProxyService, WorkspaceRoutingService, TrajectoryService],
  exports: [WorkspaceProxyService, WorkspaceRoutingService],
})
export class WorkspaceModule {}
