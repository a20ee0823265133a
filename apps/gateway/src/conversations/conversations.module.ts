import { Module } from '@nestjs/common';
import { SettingsModule } from '../settings/settings.module';
import { WorkspaceModule } from '../workspace/workspace.module';
import { ConversationCounter } from './conversation-counter.service';
import { ConversationWorkspaceController } from './conversation-workspace.controller';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { RunControlService } from './run-control.service';

@Module({
  imports: [WorkspaceModule, SettingsModule],
  controllers: [ConversationsController, ConversationWorkspaceController],
  providers: [ConversationsService, RunControlService, ConversationCounter],
  exports: [ConversationsService, RunControlService],
})
export class ConversationsModule {}
