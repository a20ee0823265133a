import { Module } from '@nestjs/common';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { RunControlService } from './run-control.service';

@Module({
  controllers: [ConversationsController],
  providers: [ConversationsService, RunControlService],
  exports: [ConversationsService, RunControlService],
})
export class ConversationsModule {}
