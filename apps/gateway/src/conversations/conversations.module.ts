import { Module } from '@nestjs/common';
import { WorkspaceModule } from '../workspace/workspace.module';
import { ConversationCounter } from './conversation-counter.service';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { RunControlService } from './run-control.service';

@Module({
  imports: [WorkspaceModule],
  controllers: [ConversationsController],
  providers: [ConversationsService, RunControlService, ConversationCounter],
  exports: [ConversationsService, RunControlService],
})
export class ConversationsModule {}
