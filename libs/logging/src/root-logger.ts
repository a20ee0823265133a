import type { BerthConfig, LogFormat } from '@berth/config';
import { PinoLogger } from 'nestjs-pino';
import pino, { DestinationStream, LevelWithSilent, Logger } from 'pino';
import { censorSecrets, REDACT_PATHS, REDACTED } from './redact';

/**
 * Where lines go: `out`'s write (process.stdout's, not pino's own fd writer, so whoever replaces it —
 * a test capturing the log — sees them), through pino-pretty for `pretty`, loaded only then;
 * colours only when `out` is a terminal.
 */
export function logDestination(format: LogFormat, out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): DestinationStream {
  if (format === 'json') return out as DestinationStream;
  const pretty = require('pino-pretty') as typeof import('pino-pretty');
  return pretty.build({
    destination: out,
    colorize: Boolean(out.isTTY),
    sync: true,
    ignore: 'pid,hostname,context',
    messageFormat: '{if context}[{context}] {end}{msg}',
  });
}

/** pino with Berth's redaction: credential headers by path, secret-looking keys at any depth. */
export function createLogger(format: LogFormat, level: LevelWithSilent = 'info', stream: DestinationStream = logDestination(format)): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      formatters: { log: (object) => censorSecrets(object) },
    },
    stream,
  );
}

let root: Logger | undefined;

/**
 * The process's logger. The first configuration picks its format; each one sets the level (the last
 * application built decides, as it did for Nest's own logger), of nestjs-pino's root too, which
 * pino-http derived from this one.
 */
export function configureLogging(config: Pick<BerthConfig, 'logLevel' | 'logFormat'>): Logger {
  root ??= createLogger(config.logFormat);
  root.level = config.logLevel;
  if (PinoLogger.root) PinoLogger.root.level = root.level;
  return root;
}

/** The process's logger (JSON at info until an application configures it). */
export function rootLogger(): Logger {
  return (root ??= createLogger('json'));
}
