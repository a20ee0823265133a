import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig } from '@berth/config';
import { BullRunQueue, InProcessRunQueue, RunQueue } from './run-queue';

class QueueLifecycle implements OnApplicationShutdown {
  constructor(@Inject(RunQueue) private readonly queue: RunQueue) {}
  async onApplicationShutdown(): Promise<void> {
    await this.queue.close();
  }
}

@Global()
@Module({})
export class QueueModule {
  static forRoot(): DynamicModule {
    return {
      module: QueueModule,
      providers: [
        {
          provide: RunQueue,
          inject: [BERTH_CONFIG],
          useFactory: (config: BerthConfig) =>
            config.redisUrl ? new BullRunQueue(config.redisUrl, config.queuePrefix) : new InProcessRunQueue(),
        },
        QueueLifecycle,
      ],
      exports: [RunQueue],
    };
  }
}
