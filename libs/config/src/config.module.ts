import { DynamicModule, Global, Inject, Module } from '@nestjs/common';
import type { BerthConfig } from './berth-config';

export const BERTH_CONFIG = Symbol('BERTH_CONFIG');
export const InjectConfig = () => Inject(BERTH_CONFIG);

@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: BERTH_CONFIG, useValue: config }], exports: [BERTH_CONFIG] };
  }
}
