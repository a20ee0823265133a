import { HttpException, Injectable, Logger } from '@nestjs/common';
import { ConversationStatus, EventBus, EventRecorder } from '@berth/bus';
import { interruptEvent, pauseEvent } from '@berth/contracts';
import { ConversationRepository, tenantScope } from '@berth/persistence';
import { RunQueue } from '@berth/queue';
import { WebhookDispatcher } from '@berth/webhooks';
import { QuotaService } from '../quotas/quota.service';
import { TooManyRequests } from '../quotas/too-many-requests';

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
    private readonly bus: EventBus,
  ) {}

  /** Marks the conversation running and queues the run for a worker. */
  async start(tenantId: string, conversationId: string): Promise<StartResult> {
    await this.quotas.checkRunStart(tenantId, conversationId);
    const scope = tenantScope(tenantId);
    if (!(await this.status.transition(tenantId, conversationId, 'start'))) {
      return (await this.rows.find(scope, conversationId)) ? 'already_running' : 'not_found';
    }
    await this.enqueue(tenantId, conversationId);
    return 'started';
  }

  /**
   * `run: true` with a message just stored: a conversation already running reads it (no 409, as
   * OpenHands), and a refusal for capacity says that the message is kept and only the run is to be
   * retried (OpenHands' words).
   */
  async startAfterMessage(tenantId: string, conversationId: string): Promise<void> {
    try {
      await this.start(tenantId, conversationId);
    } catch (err) {
      if (!(err instanceof TooManyRequests)) throw err;
      const body = err.getResponse() as Record<string, unknown>;
      throw new HttpException(
        {
          ...body,
          detail: `Message saved, but the conversation run limit was reached. Retry POST /api/conversations/${conversationId}/run without resending the message.`,
        },
        429,
      );
    }
  }

  /**
   * Wakes a worker for a conversation already marked running. The mark is the run's durable intent:
   * when the queue is down the reconciler of the workers queues the run once it is back, so the
   * request has done its part either way.
   */
  async enqueue(tenantId: string, conversationId: string): Promise<void> {
    try {
      await this.queue.enqueue({ tenantId, conversationId });
    } catch (err) {
      this.logger.warn(`could not queue the run of ${conversationId} (the reconciler will): ${(err as Error).message}`);
    }
  }

  /** Pause takes effect between agent steps; only idle and running conversations change (as OpenHands). */
  async pause(tenantId: string, conversationId: string): Promise<void> {
    if (await this.status.transition(tenantId, conversationId, 'pause')) {
      await this.recorder.record(conversationId, pauseEvent());
      await this.webhooks.conversationChanged(tenantId, conversationId);
    }
    await this.status.broadcastFullState(tenantId, conversationId);
  }

  /** Interrupt stops a running conversation at once; otherwise it behaves as pause. */
  async interrupt(tenantId: string, conversationId: string): Promise<void> {
    if (await this.status.transition(tenantId, conversationId, 'interrupt')) {
      await this.recorder.record(conversationId, interruptEvent());
      await this.bus.signalRun(conversationId, { type: 'interrupt' });
      await this.webhooks.conversationChanged(tenantId, conversationId);
      await this.status.broadcastFullState(tenantId, conversationId);
      return;
    }
    await this.pause(tenantId, conversationId);
  }
}
