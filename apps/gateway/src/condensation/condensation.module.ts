import { Module } from '@nestjs/common';
import { ConversationsModule } from '../conversations/conversations.module';
import { CondensationController } from './condensation.controller';
import { CondensationService } from './condensation.service';

/** POST …/condense: a conversation's history condensed on request. */
@Module({
  imports: [ConversationsModule],
  controllers: [CondensationController],
  providers: [CondensationService],
})
export class CondensationModule {}
