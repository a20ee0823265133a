import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig, closeOnShutdown } from '@berth/config';
import { BullRunQueue, InProcessRunQueue, RunQueue } from './run-queue';

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
        closeOnShutdown<RunQueue>(RunQueue, (queue) => queue.close()),
      ],
      exports: [RunQueue],
    };
  }
}
