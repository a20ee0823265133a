import { Injectable } from '@nestjs/common';
import { Logger } from 'nestjs-pino';

/** Nest's start-up chatter (a line per module and per route): debug, the start-up summary says what matters. */
const FRAMEWORK_CONTEXTS = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory', 'NestApplication']);

/**
 * The Nest logger of every Berth process (app.useLogger): nestjs-pino's, whose `new Logger('X')`
 * context becomes the `context` field, with the framework's info lines moved to debug.
 */
@Injectable()
export class BerthLogger extends Logger {
  override log(message: unknown, ...params: unknown[]): void {
    if (FRAMEWORK_CONTEXTS.has(params.at(-1) as string)) return super.debug(message, ...params);
    super.log(message, ...params);
  }
}
