import { DynamicModule, Module } from '@nestjs/common';
import { AgentModule, platformModules } from '@berth/agent';
import type { BerthConfig } from '@berth/config';

/** The worker process: takes runs from the queue and runs the agent loop (AgentModule). */
@Module({})
export class WorkerModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [...platformModules(config), AgentModule.forRoot()],
    };
  }
}
