import { DynamicModule, Module } from '@nestjs/common';
import { AgentModule } from '@berth/agent';
import { BusModule } from '@berth/bus';
import { ConfigModule } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { CryptoModule } from '@berth/crypto';
import { PersistenceModule } from '@berth/persistence';
import { QueueModule } from '@berth/queue';
import { AuthModule } from './auth/auth.module';
import { ConversationsModule } from './conversations/conversations.module';
import { EventsModule } from './events/events.module';
import { HealthModule } from './health/health.module';
import { SocketsModule } from './sockets/sockets.module';

@Module({})
export class AppModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        PersistenceModule.forRoot(),
        BusModule.forRoot(),
        QueueModule.forRoot(),
        CryptoModule.forRoot(),
        AuthModule,
        HealthModule,
        ConversationsModule,
        EventsModule,
        SocketsModule,
        // The embedded default (and any `--role all`) runs the workers in the same process.
        ...(config.role === 'all' ? [AgentModule.forRoot()] : []),
      ],
    };
  }
}
