import { DynamicModule, Module } from '@nestjs/common';
import type { BerthConfig } from '@berth/config';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { LoggerModule } from 'nestjs-pino';
import { BerthLogger } from './berth-logger';
import { redactUrl } from './redact';
import { configureLogging } from './root-logger';

/**
 * Structured logs (nestjs-pino): BerthLogger for app.useLogger, and pino-http's request context, so
 * every line logged while a request is served carries its `request_id`. The access line is the
 * gateway's own (its access log), not pino-http's.
 */
@Module({})
export class LoggingModule {
  static forRoot(config: Pick<BerthConfig, 'logLevel' | 'logFormat'>): DynamicModule {
    const logger = configureLogging(config);
    return {
      module: LoggingModule,
      global: true,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            logger,
            autoLogging: false,
            quietReqLogger: true,
            customAttributeKeys: { reqId: 'request_id' },
            // Fastify's id (genReqId: the caller's X-Request-Id or a new one), which middie copies onto the raw request.
            genReqId: (req: IncomingMessage) => (req as IncomingMessage & { id?: string }).id ?? randomUUID(),
            serializers: { req: (req: IncomingMessage) => ({ method: req.method, url: redactUrl(req.url ?? '') }) },
          },
        }),
      ],
      providers: [BerthLogger],
      exports: [BerthLogger],
    };
  }
}
