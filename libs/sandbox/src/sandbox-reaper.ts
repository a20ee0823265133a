import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { ConversationRepository, SandboxRepository, tenantScope } from '@berth/persistence';
import type { SandboxRow } from '@berth/persistence';
import { LeasedLoop, RunLock } from '@berth/queue';
import { ExecutorClient } from './executor-client';
import { SandboxManager } from './sandbox-manager';

const SWEEP_LEASE = 'sandbox-reaper';
const BATCH = 500;

/**
 * The idle clock. A sandbox is idle when nothing touched it for its idle_timeout: no API call, no
 * tool call, no command still running in it, and no run of one of its conversations in progress —
 * an agent waiting on its LLM is not idle (Daytona's auto-stop counts that as idle). Idle sandboxes
 * are stopped (files kept; the next call starts them again); sandboxes past their ttl are deleted.
 * One replica sweeps at a time (a lease), every BERTH_REAPER_INTERVAL_MS.
 */
@Injectable()
export class SandboxReaper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SandboxReaper');
  private readonly loop: LeasedLoop;

  constructor(
    private readonly rows: SandboxRepository,
    private readonly conversations: ConversationRepository,
    private readonly sandboxes: SandboxManager,
    lock: RunLock,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {
    this.loop = new LeasedLoop(lock, SWEEP_LEASE, this.logger);
  }

  onApplicationBootstrap(): void {
    if (this.config.reaperIntervalMs) this.loop.every(this.config.reaperIntervalMs, () => this.sweep(new Date(), { stopped: [], deleted: [] }));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  /** One sweep (skipped when another replica is sweeping); returns what it did, for tests and logs. */
  async sweepOnce(now = new Date()): Promise<{ stopped: string[]; deleted: string[] }> {
    const done = { stopped: [] as string[], deleted: [] as string[] };
    await this.loop.once(() => this.sweep(now, done));
    return done;
  }

  private async sweep(now: Date, done: { stopped: string[]; deleted: string[] }): Promise<void> {
    // Paged by id: a row left as it was (busy and touched, or a stop that failed) is not read twice.
    for (let afterId: string | null = null; ; ) {
      const page = await this.rows.listForSweep(now, BATCH, afterId);
      for (const row of page) await this.sweepRow(row, now, done);
      if (page.length < BATCH) return;
      afterId = page[page.length - 1].id;
    }
  }

  private async sweepRow(row: SandboxRow, now: Date, done: { stopped: string[]; deleted: string[] }): Promise<void> {
    const owner = tenantScope(row.tenantId);
    if (row.ttlSeconds !== null && row.createdAt.getTime() + row.ttlSeconds * 1000 <= now.getTime()) {
      await this.sandboxes.destroy(owner, row);
      done.deleted.push(row.id);
      this.logger.log(`deleted sandbox ${row.id}: past its ttl`);
      return;
    }
    if (await this.busy(row)) {
      await this.sandboxes.touch(owner, row.id);
      return;
    }
    await this.sandboxes.pause(owner, row, 'stopped');
    done.stopped.push(row.id);
    this.logger.log(`stopped sandbox ${row.id}: idle for ${row.idleTimeoutSeconds} s`);
  }

  /** Activity the row does not show: a run of one of its conversations, a command still running. */
  private async busy(row: SandboxRow): Promise<boolean> {
    const running = await this.conversations.countInSandbox(tenantScope(row.tenantId), row.id, 'running');
    if (running) return true;
    const handle = this.sandboxes.handleOf(row);
    if (!handle) return false;
    try {
      const activity = await new ExecutorClient(handle).activity({ timeoutMs: 5000 });
      return activity.running_commands > 0 || activity.running_terminals > 0;
    } catch {
      return false;
    }
  }
}
