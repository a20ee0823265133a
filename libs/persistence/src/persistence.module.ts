import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig, closeOnShutdown } from '@berth/config';
import { Database } from './database';
import { EventLog } from './event-log';

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
          useFactory: (config: BerthConfig) => new Database({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize }),
        },
        { provide: EventLog, inject: [Database], useFactory: (db: Database) => new EventLog(db) },
        closeOnShutdown<Database>(Database, (db) => db.close()),
      ],
      exports: [Database, EventLog],
    };
  }
}
