import { Module } from '@nestjs/common';
import { ConversationsModule } from '../conversations/conversations.module';
import { SettingsModule } from '../settings/settings.module';
import { ConversationOpsController } from './conversation-ops.controller';
import { ConversationOpsService } from './conversation-ops.service';

/** ask_agent, switch_llm / switch_profile and fork (titles: ConversationTitlesModule). */
@Module({
  imports: [ConversationsModule, SettingsModule],
  controllers: [ConversationOpsController],
  providers: [ConversationOpsService],
})
export class ConversationOpsModule {}
