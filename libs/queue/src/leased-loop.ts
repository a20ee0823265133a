import { Logger } from '@nestjs/common';
import { reconcileErrors } from '@berth/metrics';
import { RunLease, RunLock } from './run-lock';

/**
 * A periodic pass that one process runs at a time across replicas (a RunLock lease under a name no
 * conversation has) and one at a time within this process. It runs from a timer: a failing pass (a
 * Redis outage for the lease, PostgreSQL for the rows) is logged and the next tick tries again;
 * nothing escapes as an unhandled rejection.
 */
export class LeasedLoop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;

  constructor(
    private readonly lock: RunLock,
    private readonly leaseName: string,
    private readonly logger: Logger,
  ) {}

  /** Runs `pass` every `intervalMs` (the first after `firstMs`), each one after the previous ended. */
  every(intervalMs: number, pass: (lease: RunLease) => Promise<unknown>, firstMs = intervalMs): void {
    const tick = (ms: number) => {
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.once(pass).finally(() => tick(intervalMs)), ms);
      this.timer.unref();
    };
    tick(firstMs);
  }

  /** One pass under the lease; undefined when another process holds it, a pass of this one is under way, the loop stopped, or the pass failed. */
  async once<T>(pass: (lease: RunLease) => Promise<T>): Promise<T | undefined> {
    if (this.running || this.stopped) return undefined;
    const run = this.leased(pass).catch((err: Error) => {
      reconcileErrors.inc({ loop: this.leaseName });
      this.logger.warn(`${this.leaseName}: pass failed (retried at the next tick): ${err.message.split('\n').pop()}`);
      return undefined;
    });
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = undefined;
    }
  }

  /** No more passes; the one under way ends first. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private async leased<T>(pass: (lease: RunLease) => Promise<T>): Promise<T | undefined> {
    const lease = await this.lock.acquire(this.leaseName, 0);
    if (!lease) return undefined;
    try {
      return await pass(lease);
    } finally {
      await lease.release().catch(() => undefined);
    }
  }
}
