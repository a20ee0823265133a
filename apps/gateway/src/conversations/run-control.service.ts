import { Inject, Injectable, Logger, ServiceUnavailableException } from '@nestjs/common';
import { EventRecorder } from '@berth/bus';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { ExecutionStatus, interruptEvent, pauseEvent, stateUpdateEvent } from '@berth/contracts';
import { Database } from '@berth/persistence';
import { RunQueue } from '@berth/queue';
import { ConversationCounter } from './conversation-counter.service';
import { toFullState } from './conversation-view';

const STARTABLE: ExecutionStatus[] = ['idle', 'paused', 'waiting_for_confirmation', 'finished', 'error', 'stuck'];

export type StartResult = 'started' | 'already_running' | 'not_found';

/** Execution-status transitions of a conversation and the events that announce them. */
@Injectable()
export class RunControlService {
  private readonly logger = new Logger('RunControl');

  constructor(
    private readonly db: Database,
    private readonly recorder: EventRecorder,
    private readonly queue: RunQueue,
    private readonly counter: ConversationCounter,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  /** Moves the status from one of `from` to `to` atomically; records the state update when it moved. */
  async transition(tenantId: string, conversationId: string, from: ExecutionStatus[], to: ExecutionStatus): Promise<boolean> {
    const { count } = await this.db.prisma.conversation.updateMany({
      where: { id: conversationId, tenantId, executionStatus: { in: from } },
      data: { executionStatus: to },
    });
    if (count) await this.statusChanged(tenantId, conversationId, to);
    return count > 0;
  }

  private async statusChanged(tenantId: string, conversationId: string, to: ExecutionStatus): Promise<void> {
    await this.counter.changed(tenantId);
    await this.recorder.record(conversationId, stateUpdateEvent('execution_status', to));
  }

  /** Marks the conversation running and queues the run for a worker. */
  async start(tenantId: string, conversationId: string): Promise<StartResult> {
    const { count } = await this.db.prisma.conversation.updateMany({
      where: { id: conversationId, tenantId, executionStatus: { in: STARTABLE } },
      data: { executionStatus: 'running' },
    });
    if (!count) {
      const row = await this.db.prisma.conversation.findFirst({ where: { id: conversationId, tenantId }, select: { executionStatus: true } });
      return row ? 'already_running' : 'not_found';
    }
    await this.statusChanged(tenantId, conversationId, 'running');
    await this.enqueue(tenantId, conversationId);
    return 'started';
  }

  /** Queues a run for a conversation already marked running; undoes the mark if the queue is down. */
  async enqueue(tenantId: string, conversationId: string): Promise<void> {
    try {
      await this.queue.enqueue({ tenantId, conversationId });
    } catch (err) {
      this.logger.error(`could not queue the run of ${conversationId}: ${(err as Error).message}`);
      await this.transition(tenantId, conversationId, ['running'], 'idle');
      throw new ServiceUnavailableException({ detail: 'The run queue is unavailable; try again shortly.' });
    }
  }

  /** Pause takes effect between agent steps; only idle and running conversations change (as OpenHands). */
  async pause(tenantId: string, conversationId: string): Promise<void> {
    if (await this.transition(tenantId, conversationId, ['idle', 'running'], 'paused')) {
      await this.recorder.record(conversationId, pauseEvent());
    }
    await this.broadcastFullState(conversationId);
  }

  /** Interrupt stops a running conversation at once; otherwise it behaves as pause. */
  async interrupt(tenantId: string, conversationId: string): Promise<void> {
    if (await this.transition(tenantId, conversationId, ['running'], 'paused')) {
      await this.recorder.record(conversationId, interruptEvent());
      await this.broadcastFullState(conversationId);
      return;
    }
    await this.pause(tenantId, conversationId);
  }

  /** The whole state, to every subscriber (never stored): the Python client waits for it after a run. */
  async broadcastFullState(conversationId: string): Promise<void> {
    const row = await this.db.prisma.conversation.findUnique({ where: { id: conversationId } });
    if (!row) return;
    await this.recorder.broadcast(conversationId, stateUpdateEvent('full_state', toFullState(row, this.config.conversationsPath)));
  }
}
