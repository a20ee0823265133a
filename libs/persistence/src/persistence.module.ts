import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig } from '@berth/config';
import { Database } from './database';
import { EventLog } from './event-log';

class DatabaseLifecycle implements OnApplicationShutdown {
  constructor(@Inject(Database) private readonly db: Database) {}
  async onApplicationShutdown(): Promise<void> {
    await this.db.close();
  }
}

@Global()
@Module({})
export class PersistenceModule {
  static forRoot(): DynamicModule {
    return {
      module: PersistenceModule,
      providers: [
        {
          provide: Database,
          inject: [BERTH_CONFIG],
          useFactory: (config: BerthConfig) => new Database({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }),
        },
        { provide: EventLog, inject: [Database], useFactory: (db: Database) => new EventLog(db) },
        DatabaseLifecycle,
      ],
      exports: [Database, EventLog],
    };
  }
}
