import { DynamicModule, Module } from '@nestjs/common';
import { BusModule } from '@berth/bus';
import { ConfigModule } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { CryptoModule } from '@berth/crypto';
import { PersistenceModule } from '@berth/persistence';
import { QueueModule } from '@berth/queue';

/**
 * The worker process: the shared storage, event bus and run queue. It takes runs from the queue
 * once the agent loop lands (issue "Agent runs"); today it migrates the database and reports health.
 */
@Module({})
export class WorkerModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [ConfigModule.forRoot(config), PersistenceModule.forRoot(), BusModule.forRoot(), QueueModule.forRoot(), CryptoModule.forRoot()],
    };
  }
}
