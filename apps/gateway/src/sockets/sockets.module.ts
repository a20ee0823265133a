import { Module } from '@nestjs/common';
import { ConversationsModule } from '../conversations/conversations.module';
import { EventsModule } from '../events/events.module';
import { EventsSocket } from './events.socket';
import { WsRouter } from './ws-router';

@Module({
  imports: [ConversationsModule, EventsModule],
  providers: [WsRouter, EventsSocket],
  exports: [WsRouter],
})
export class SocketsModule {}
