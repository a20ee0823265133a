import { DynamicModule, Global, Inject, InjectionToken, Module, Provider } from '@nestjs/common';
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

/** A provider that closes the resource behind `token` when the application shuts down. */
export function closeOnShutdown<T>(token: InjectionToken, close: (resource: T) => Promise<void>): Provider {
  return {
    provide: Symbol(`close ${String(token)}`),
    inject: [token],
    useFactory: (resource: T) => ({ onApplicationShutdown: () => close(resource) }),
  };
}
