/** pino's numeric levels: the executor's lines read like the rest of Berth's (README "Logs"). */
const LEVELS = { warn: 40, error: 50, fatal: 60 } as const;

/**
 * One JSON line on stderr (stdout carries the ready line the driver reads), in pino's shape, without
 * pino: the executor ships in every sandbox, with as few packages as it can.
 */
export function logLine(level: keyof typeof LEVELS, msg: string, err?: unknown): void {
  const error = err instanceof Error ? { err: { type: err.name, message: err.message, stack: err.stack } } : err === undefined ? {} : { err: { message: String(err) } };
  process.stderr.write(`${JSON.stringify({ level: LEVELS[level], time: Date.now(), pid: process.pid, context: 'Executor', msg, ...error })}\n`);
}
