import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { SecretDecryptError } from '@berth/crypto';
import { randomBytes } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { isDependencyOutage, OUTAGE_RETRY_AFTER_S } from './outage';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/**
 * The body OpenHands (FastAPI) gives for an error: `{"detail": …}`; 5xx add an error id (the log
 * line says the rest). Only with DEBUG set does a 5xx carry the exception and its traceback:
 * otherwise database text, source lines and paths would reach the client.
 */
export function errorBody(status: number, detail: unknown, exception?: unknown, debug = false): Record<string, unknown> {
  if (status < 500) return { detail: detail ?? STATUS_TEXT[status] ?? 'Error' };
  if (status === 503) return { detail: detail ?? STATUS_TEXT[503] };
  const body: Record<string, unknown> = { detail: 'Internal Server Error', error_id: randomBytes(16).toString('hex') };
  if (debug && exception instanceof Error) {
    body.exception = exception.message;
    body.traceback = exception.stack;
  }
  return body;
}

/**
 * An unexpected error as the server log shows it: its name, its reason and where it was thrown,
 * but not what it was called with — a Prisma error prints the query's arguments (secrets,
 * message text) above its reason, which is its last line.
 */
export function loggableError(exception: unknown): string {
  if (!(exception instanceof Error)) return redactLine(String(exception));
  const lines = exception.message.split('\n').map((l) => l.trim()).filter(Boolean);
  const reason = exception.name.startsWith('PrismaClient') ? (lines[lines.length - 1] ?? '') : lines.join(' ');
  const code = (exception as { code?: unknown }).code;
  const frames = (exception.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  return [`${exception.name}${typeof code === 'string' ? ` ${code}` : ''}: ${redactLine(reason)}`, ...frames].join('\n');
}

/** Values after a secret-looking name (`api_key: …`, `"token":"…"`, `Bearer …`) masked, the line bounded. */
function redactLine(text: string): string {
  return text
    .replace(/((?:key|token|secret|password|authorization|cookie|credential)[\w-]*["']?\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)/gi, '$1<redacted>')
    .replace(/Bearer\s+\S+/gi, 'Bearer <redacted>')
    .slice(0, 2000);
}

/** The `detail` of a Nest HttpException, whichever way it was thrown. */
function detailOf(exception: HttpException): unknown {
  const response = exception.getResponse();
  if (typeof response === 'string') return response;
  if (response && typeof response === 'object') {
    const r = response as Record<string, unknown>;
    if ('detail' in r) return r.detail;
    // Nest's built-in exceptions ({statusCode, message, error}) and passport's 401.
    if (exception.getStatus() === 401) return 'Unauthorized';
    if (exception.getStatus() === 404 && typeof r.message === 'string' && r.message.startsWith('Cannot ')) return 'Not Found';
    if (typeof r.message === 'string') return r.message;
    if (Array.isArray(r.message)) return r.message.join('; ');
  }
  return STATUS_TEXT[exception.getStatus()];
}

/** Every error leaves the gateway as an OpenHands-style body, and no 5xx leaks internals beyond a message. */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpError');

  constructor(private readonly debug = false) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { status, body } = toHttpError(exception, this.debug);
    if (status >= 500 && status !== 503) {
      this.logger.error(`${body.error_id}: ${loggableError(exception)}`);
    } else if (status === 503 && !(exception instanceof HttpException)) {
      this.logger.warn(`dependency unavailable: ${loggableError(exception).split('\n')[0]}`);
    }
    const headers = exception instanceof HttpException ? (exception.getResponse() as { headers?: Record<string, string> }).headers : undefined;
    if (headers) reply.headers(headers);
    if (status === 503 && !reply.hasHeader('retry-after')) reply.header('Retry-After', String(OUTAGE_RETRY_AFTER_S));
    reply.status(status).send(body);
  }
}

export function toHttpError(exception: unknown, debug = false): { status: number; body: Record<string, unknown> } {
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    return { status, body: errorBody(status, detailOf(exception), exception, debug) };
  }
  // Fastify's own errors (body too large, bad content type, …) carry a 4xx statusCode.
  const statusCode = (exception as { statusCode?: number })?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return { status: statusCode, body: errorBody(statusCode, (exception as Error).message) };
  }
  // A stored secret no configured key opens (the key was changed): the client can set it again.
  if (exception instanceof SecretDecryptError) return { status: 409, body: errorBody(409, exception.message) };
  // PostgreSQL or Redis away: the client should retry, and learns nothing of the failing call.
  if (isDependencyOutage(exception)) return { status: 503, body: errorBody(503, 'Service temporarily unavailable: a dependency is unreachable, retry later') };
  return { status: 500, body: errorBody(500, undefined, exception, debug) };
}
