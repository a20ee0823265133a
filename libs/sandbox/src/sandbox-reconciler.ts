import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { reconcileErrors } from '@berth/metrics';
import { SandboxRepository, tenantScope } from '@berth/persistence';
import type { SandboxRow } from '@berth/persistence';
import { LeasedLoop, RunLock } from '@berth/queue';
import { DriverResource, SandboxDriver } from './sandbox-driver';
import { SandboxManager } from './sandbox-manager';

const RECONCILE_LEASE = 'sandbox-reconciler';
const PAGE = 500;
/** A start takes seconds (a pod's image pull, minutes): a row `starting` this long with nothing running was left by a start that died with its process. */
export const START_GRACE_MS = 10 * 60_000;

/** Reasons a sandbox was found `lost`: its executor is not running, nothing of it is left on the platform, or its start never finished. */
export const LOST_REASONS = { notRunning: 'ExecutorNotRunning', missing: 'NotFoundOnPlatform', startInterrupted: 'StartInterrupted' } as const;

/** What one pass did, by sandbox id (for tests and logs). */
export interface ReconcileReport {
  /** desired stopped, found running: stopped */
  stopped: string[];
  /** desired destroyed: the delete finished */
  destroyed: string[];
  /** observed running (or starting for too long), nothing runs on the platform: marked `lost` */
  lost: string[];
  /** observed running, failed on the platform: marked `error` with the platform's reason */
  failed: string[];
  /** on the platform with no row: removed */
  orphans: string[];
}

/**
 * Drives each sandbox's observed state towards its desired state, as a control plane does: reads
 * the driver's inventory and the rows, then stops what should be stopped, finishes deletes, records
 * platform failures (ImagePullBackOff…) as `error`, marks a running sandbox whose executor vanished
 * `lost`, and removes what the platform holds for no row. A lost sandbox is not restarted here: the
 * next call that needs it starts it again (as after the idle clock), so nothing unused is revived.
 * One process at a time (a lease), every BERTH_SANDBOX_RECONCILE_MS.
 */
@Injectable()
export class SandboxReconciler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SandboxReconciler');
  private readonly loop: LeasedLoop;

  constructor(
    private readonly rows: SandboxRepository,
    private readonly sandboxes: SandboxManager,
    private readonly driver: SandboxDriver,
    lock: RunLock,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {
    this.loop = new LeasedLoop(lock, RECONCILE_LEASE, this.logger);
  }

  onApplicationBootstrap(): void {
    if (this.config.sandboxReconcileMs) this.loop.every(this.config.sandboxReconcileMs, () => this.reconcile(emptyReport()));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  /** One pass (skipped when another process reconciles); what it did. */
  async reconcileOnce(): Promise<ReconcileReport> {
    const done = emptyReport();
    await this.loop.once(() => this.reconcile(done));
    return done;
  }

  private async reconcile(done: ReconcileReport): Promise<ReconcileReport> {
    // Rows first, then the platform: a row that changes after it was read loses its compare-and-set
    // below and waits for the next pass, so a sandbox started meanwhile is never taken for lost.
    const known = new Map<string, SandboxRow>();
    const startedBefore = new Date(Date.now() - START_GRACE_MS);
    for (let afterId: string | null = null; ; ) {
      const page: SandboxRow[] = await this.rows.listForReconcile(this.driver.kind, startedBefore, PAGE, afterId);
      for (const row of page) known.set(row.id, row);
      if (page.length < PAGE) break;
      afterId = page[page.length - 1].id;
    }
    const resources = new Map((await this.driver.inventory()).map((r) => [r.sandboxId, r]));
    // Read after the inventory: a row is made before its sandbox's resources, so one missing here has none.
    for (const row of await this.rows.findOfAnyTenant([...resources.keys()].filter((id) => !known.has(id)))) known.set(row.id, row);
    for (const id of resources.keys()) {
      if (known.has(id)) continue;
      await this.attempt(id, async () => {
        await this.driver.removeOrphan(id);
        done.orphans.push(id);
        this.logger.log(`removed sandbox ${id}: the platform held it for no row`);
      });
    }
    for (const row of known.values()) await this.attempt(row.id, () => this.reconcileRow(row, resources.get(row.id), startedBefore, done));
    return done;
  }

  /** One sandbox's failure is logged; the pass goes on with the others. */
  private async attempt(id: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      reconcileErrors.inc({ loop: RECONCILE_LEASE });
      this.logger.warn(`sandbox ${id}: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  private async reconcileRow(row: SandboxRow, resource: DriverResource | undefined, startedBefore: Date, done: ReconcileReport): Promise<void> {
    const scope = tenantScope(row.tenantId);
    const handle = this.sandboxes.handleOf(row);
    // A handle this driver did not make (another data dir) names nothing it may judge.
    if (handle && !this.driver.owns(handle)) return;
    if (row.desiredState === 'destroyed') {
      await this.sandboxes.destroy(scope, row);
      done.destroyed.push(row.id);
      this.logger.log(`deleted sandbox ${row.id}: its delete had not finished`);
      return;
    }
    if (row.desiredState === 'stopped') {
      if (resource?.state !== 'running' && row.status !== 'running') return;
      if (!(await this.sandboxes.enforceStopped(scope, row))) return;
      done.stopped.push(row.id);
      this.logger.log(`stopped sandbox ${row.id}: it ran while wanted stopped`);
      return;
    }
    // Wanted running: only a sandbox seen running can have been lost; a start under way records its
    // own outcome, unless it has been under way for longer than any start takes.
    const stuck = row.status === 'starting' && row.updatedAt < startedBefore;
    if ((row.status !== 'running' && !stuck) || resource?.state === 'running') return;
    const failed = resource?.state === 'error';
    const reason = failed ? (resource.reason ?? 'PlatformError') : stuck ? LOST_REASONS.startInterrupted : resource ? LOST_REASONS.notRunning : LOST_REASONS.missing;
    const marked = await this.rows.changeState(
      scope,
      row.id,
      // Only as read: a row changed since (restarted, stopped) was judged on stale facts.
      (current) => (current.stateVersion === row.stateVersion ? { status: failed ? 'error' : 'lost', statusReason: reason } : null),
      row,
    );
    if (!marked.applied) return;
    (failed ? done.failed : done.lost).push(row.id);
    this.logger.warn(`sandbox ${row.id} is ${failed ? 'in error' : 'lost'}: ${reason}`);
  }
}

function emptyReport(): ReconcileReport {
  return { stopped: [], destroyed: [], lost: [], failed: [], orphans: [] };
}
