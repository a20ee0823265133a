import { Module } from '@nestjs/common';
import { ConversationsModule } from '../conversations/conversations.module';
import { EventsModule } from '../events/events.module';
import { WorkspaceModule } from '../workspace/workspace.module';
import { BashEventsSocket } from './bash-events.socket';
import { ConversationStreams } from './conversation-streams';
import { EventsSocket } from './events.socket';
import { SessionSocket } from './session.socket';
import { SocketAuth } from './socket-auth';
import { WsRouter } from './ws-router';

@Module({
  imports: [ConversationsModule, EventsModule, WorkspaceModule],
  providers: [WsRouter, SocketAuth, ConversationStreams, EventsSocket, SessionSocket, BashEventsSocket],
  exports: [WsRouter],
})
export class SocketsModule {}
