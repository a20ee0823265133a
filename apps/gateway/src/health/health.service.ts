import { Injectable } from '@nestjs/common';
import { EventBus } from '@berth/bus';
import { Database } from '@berth/persistence';
import { RunQueue } from '@berth/queue';

const CHECK_TIMEOUT_MS = 2000;

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer in time`)), CHECK_TIMEOUT_MS))),
  ]);
}

@Injectable()
export class HealthService {
  constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly queue: RunQueue,
  ) {}

  /** Why the server is not ready, or null when it is. */
  async problem(): Promise<string | null> {
    if (!this.db.isMigrated) return 'Server is still initializing (database migrations)';
    const checks: [string, () => Promise<void>][] = [
      ['database', () => this.db.ping()],
      ['event bus', () => this.bus.ping()],
      ['run queue', () => this.queue.ping()],
    ];
    for (const [what, check] of checks) {
      try {
        await within(check(), what);
      } catch {
        // Named, not quoted: a driver's message may carry hosts and paths.
        return `Dependency unavailable: ${what}`;
      }
    }
    return null;
  }
}
