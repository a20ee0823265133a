import { DynamicModule, Module } from '@nestjs/common';
import { BERTH_CONFIG, projectVersion } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { startTracing } from './tracing';

/**
 * Traces the process when OTEL_EXPORTER_OTLP_ENDPOINT (or …_TRACES_ENDPOINT) is set, as
 * OTEL_SERVICE_NAME (default `berth`, `berth-worker` for a worker); the buffered spans are sent at shutdown.
 */
@Module({})
export class TracingModule {
  static forRoot(): DynamicModule {
    return {
      module: TracingModule,
      providers: [
        {
          provide: Symbol('tracing'),
          inject: [BERTH_CONFIG],
          useFactory: async (config: BerthConfig) => {
            if (!config.tracing) return {};
            const serviceName = config.tracing.serviceName ?? (config.role === 'worker' ? 'berth-worker' : 'berth');
            const tracing = await startTracing({ tracesUrl: config.tracing.tracesUrl, serviceName, serviceVersion: projectVersion() });
            return { onApplicationShutdown: () => tracing.shutdown() };
          },
        },
      ],
    };
  }
}
