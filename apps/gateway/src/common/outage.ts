/**
 * Errors that mean a dependency (PostgreSQL, Redis) is away rather than that the request is wrong:
 * the gateway answers them 503 with Retry-After, and closes sockets with 1013, so clients retry.
 * Recognised by class and code, never by the request's content.
 */

/** What a client is told to wait before retrying, in seconds. */
export const OUTAGE_RETRY_AFTER_S = 5;

/** Prisma: database unreachable, timed out, connection closed, pool exhausted, too many connections. */
const PRISMA_OUTAGE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P1037']);
/** PostgreSQL SQLSTATE: connection exceptions (08…), shutting down / starting up (57P01–57P03), too many connections. */
const POSTGRES_OUTAGE_CODE = /^(08\d{3}|57P0[1-3]|53300)$/;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);
/** ioredis (and BullMQ through it), pg and the bus: an outage named by class. */
const OUTAGE_NAMES = new Set(['PrismaClientInitializationError', 'MaxRetriesPerRequestError', 'BusUnavailableError']);
/** ioredis and pg report a lost connection by message only. */
const OUTAGE_MESSAGE = /^(Connection is closed\.|Stream isn't writeable|Connection terminated( unexpectedly)?$|Connection terminated due to connection timeout|timeout exceeded when trying to connect)/;

/** True when the error (or one it wraps) says PostgreSQL or Redis cannot be reached now. */
export function isDependencyOutage(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (OUTAGE_NAMES.has(e.name) || OUTAGE_MESSAGE.test(e.message)) return true;
    if (typeof code === 'string' && (PRISMA_OUTAGE_CODES.has(code) || POSTGRES_OUTAGE_CODE.test(code) || NETWORK_CODES.has(code))) return true;
  }
  return false;
}
