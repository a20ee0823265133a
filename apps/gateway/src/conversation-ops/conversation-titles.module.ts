import { Module } from '@nestjs/common';
import { SettingsModule } from '../settings/settings.module';
import { ConversationTitles } from './conversation-titles.service';

/** LLM-written titles (its own module: conversations and events both hand it first messages). */
@Module({
  imports: [SettingsModule],
  providers: [ConversationTitles],
  exports: [ConversationTitles],
})
export class ConversationTitlesModule {}
