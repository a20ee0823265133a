import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig, closeOnShutdown } from '@berth/config';
import { measureRunQueue } from '@berth/metrics';
import { InProcessRunLock, RedisRunLock, RunLock } from './run-lock';
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
            config.redisUrl ? new BullRunQueue(config.redisUrl, config.queuePrefix, config.runStallMs) : new InProcessRunQueue(),
        },
        {
          // /metrics reads this process's queue until it shuts down.
          provide: Symbol('run queue depth'),
          inject: [RunQueue],
          useFactory: (queue: RunQueue) => ({ onApplicationShutdown: measureRunQueue(() => queue.depth()) }),
        },
        {
          provide: RunLock,
          inject: [BERTH_CONFIG],
          useFactory: (config: BerthConfig) =>
            config.redisUrl ? new RedisRunLock(config.redisUrl, config.runStallMs, config.queuePrefix) : new InProcessRunLock(),
        },
        closeOnShutdown<RunQueue>(RunQueue, (queue) => queue.close()),
        closeOnShutdown<RunLock>(RunLock, (lock) => lock.close()),
      ],
      exports: [RunQueue, RunLock],
    };
  }
}
