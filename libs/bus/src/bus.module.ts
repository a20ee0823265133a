import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig } from '@berth/config';
import { EventLog } from '@berth/persistence';
import { EventBus, InProcessEventBus, RedisEventBus } from './event-bus';
import { EventRecorder } from './event-recorder';

class BusLifecycle implements OnApplicationShutdown {
  constructor(@Inject(EventBus) private readonly bus: EventBus) {}
  async onApplicationShutdown(): Promise<void> {
    await this.bus.close();
  }
}

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
        BusLifecycle,
      ],
      exports: [EventBus, EventRecorder],
    };
  }
}
