import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig, closeOnShutdown } from '@berth/config';
import { ConversationRepository, EventLog } from '@berth/persistence';
import { EventBus, InProcessEventBus, RedisEventBus } from './event-bus';
import { ConversationStatus } from './conversation-status';
import { EventRecorder } from './event-recorder';

@Global()
@Module({})
export class BusModule {
  static forRoot(): DynamicModule {
    return {
      module: BusModule,
      providers: [
        {
          provide: EventBus,
          inject: [BERTH_CONFIG],
          useFactory: (config: BerthConfig) => (config.redisUrl ? new RedisEventBus(config.redisUrl) : new InProcessEventBus()),
        },
        { provide: EventRecorder, inject: [EventLog, EventBus], useFactory: (log: EventLog, bus: EventBus) => new EventRecorder(log, bus) },
        {
          provide: ConversationStatus,
          inject: [ConversationRepository, EventRecorder, EventBus, BERTH_CONFIG],
          useFactory: (conversations: ConversationRepository, recorder: EventRecorder, bus: EventBus, config: BerthConfig) =>
            new ConversationStatus(conversations, recorder, bus, config.conversationsPath),
        },
        closeOnShutdown<EventBus>(EventBus, (bus) => bus.close()),
      ],
      exports: [EventBus, EventRecorder, ConversationStatus],
    };
  }
}
