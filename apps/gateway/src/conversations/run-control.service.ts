import { Injectable, Logger, ServiceUnavailableException } from '@nestjs/common';
import { ConversationStatus, EventRecorder } from '@berth/bus';
import { ExecutionStatus, interruptEvent, pauseEvent } from '@berth/contracts';
import { ConversationRepository, tenantScope } from '@berth/persistence';
import { RunQueue } from '@berth/queue';
import { WebhookDispatcher } from '@berth/webhooks';
import { QuotaService } from '../quotas/quota.service';

const STARTABLE: ExecutionStatus[] = ['idle', 'paused', 'waiting_for_confirmation', 'finished', 'error', 'stuck'];

export type StartResult = 'started' | 'already_running' | 'not_found';

/** Execution-status transitions of a conversation and the events that announce them. */
@Injectable()
export class RunControlService {
  private readonly logger = new Logger('RunControl');

  constructor(
    private readonly rows: ConversationRepository,
    private readonly recorder: EventRecorder,
    private readonly queue: RunQueue,
    private readonly status: ConversationStatus,
    private readonly webhooks: WebhookDispatcher,
    private readonly quotas: QuotaService,
  ) {}

  /** Marks the conversation running and queues the run for a worker. */
  async start(tenantId: string, conversationId: string): Promise<StartResult> {
    await this.quotas.checkRunStart(tenantId, conversationId);
    const scope = tenantScope(tenantId);
    if (!(await this.rows.setStatus(scope, conversationId, STARTABLE, 'running'))) {
      return (await this.rows.find(scope, conversationId)) ? 'already_running' : 'not_found';
    }
    await this.status.announce(tenantId, conversationId, 'running');
    await this.enqueue(tenantId, conversationId);
    return 'started';
  }

  /** Queues a run for a conversation already marked running; undoes the mark if the queue is down. */
  async enqueue(tenantId: string, conversationId: string): Promise<void> {
    try {
      await this.queue.enqueue({ tenantId, conversationId });
    } catch (err) {
      this.logger.error(`could not queue the run of ${conversationId}: ${(err as Error).message}`);
      await this.status.transition(tenantId, conversationId, ['running'], 'idle');
      throw new ServiceUnavailableException({ detail: 'The run queue is unavailable; try again shortly.' });
    }
  }

  /** Pause takes effect between agent steps; only idle and running conversations change (as OpenHands). */
  async pause(tenantId: string, conversationId: string): Promise<void> {
    if (await this.status.transition(tenantId, conversationId, ['idle', 'running'], 'paused')) {
      await this.recorder.record(conversationId, pauseEvent());
      await this.webhooks.conversationChanged(tenantId, conversationId);
    }
    await this.status.broadcastFullState(tenantId, conversationId);
  }

  /** Interrupt stops a running conversation at once; otherwise it behaves as pause. */
  async interrupt(tenantId: string, conversationId: string): Promise<void> {
    if (await this.status.transition(tenantId, conversationId, ['running'], 'paused')) {
      await this.recorder.record(conversationId, interruptEvent());
      await this.webhooks.conversationChanged(tenantId, conversationId);
      await this.status.broadcastFullState(tenantId, conversationId);
      return;
    }
    await this.pause(tenantId, conversationId);
  }
}
