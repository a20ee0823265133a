import { Module } from '@nestjs/common';
import { ConversationRuntimeController, VSCodeController } from './conversation-runtime.controller';
import { WorkspaceController } from './workspace.controller';
import { WorkspaceProxyService } from './workspace-proxy.service';
import { WorkspaceRoutingService } from './workspace-routing.service';

@Module({
  controllers: [WorkspaceController, ConversationRuntimeController, VSCodeController],
  providers: [WorkspaceProxyService, WorkspaceRoutingService],
  exports: [WorkspaceProxyService, WorkspaceRoutingService],
})
export class WorkspaceModule {}
