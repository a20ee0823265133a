import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig, closeOnShutdown } from '@berth/config';
import { Database } from './database';
import { ConversationRepository } from './conversation-repository';
import { EventLog } from './event-log';
import { SandboxRepository } from './sandbox-repository';
import { SettingsRepository } from './settings-repository';
import { StoredSecretsRepository } from './stored-secrets-repository';

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
          useFactory: (config: BerthConfig) => new Database({
              databaseUrl: config.databaseUrl,
              dataDir: config.dataDir,
              poolSize: config.dbPoolSize,
              embeddedSharedBuffersMb: config.embeddedSharedBuffersMb,
            }),
        },
        { provide: EventLog, inject: [Database], useFactory: (db: Database) => new EventLog(db) },
        { provide: ConversationRepository, inject: [Database], useFactory: (db: Database) => new ConversationRepository(db) },
        { provide: SandboxRepository, inject: [Database], useFactory: (db: Database) => new SandboxRepository(db) },
        { provide: SettingsRepository, inject: [Database], useFactory: (db: Database) => new SettingsRepository(db) },
        { provide: StoredSecretsRepository, inject: [Database], useFactory: (db: Database) => new StoredSecretsRepository(db) },
        closeOnShutdown<Database>(Database, (db) => db.close()),
      ],
      exports: [Database, EventLog, ConversationRepository, SandboxRepository, SettingsRepository, StoredSecretsRepository],
    };
  }
}
