import { DynamicModule, Module } from '@nestjs/common';
import { AgentModule } from '@berth/agent';
import { BusModule } from '@berth/bus';
import { ConfigModule } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { CryptoModule } from '@berth/crypto';
import { PersistenceModule } from '@berth/persistence';
import { QueueModule } from '@berth/queue';

/** The worker process: takes runs from the queue and runs the agent loop (AgentModule). */
@Module({})
export class WorkerModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        PersistenceModule.forRoot(),
        BusModule.forRoot(),
        QueueModule.forRoot(),
        CryptoModule.forRoot(),
        AgentModule.forRoot(),
      ],
    };
  }
}
