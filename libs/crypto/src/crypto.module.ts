import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig } from '@berth/config';
import { SecretVault } from './secret-vault';

@Global()
@Module({})
export class CryptoModule {
  static forRoot(): DynamicModule {
    return {
      module: CryptoModule,
      providers: [
        { provide: SecretVault, inject: [BERTH_CONFIG], useFactory: (c: BerthConfig) => new SecretVault(c.secretKey, c.dataDir, c.previousSecretKeys) },
      ],
      exports: [SecretVault],
    };
  }
}
