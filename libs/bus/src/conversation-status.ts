import { ExecutionStatus, stateUpdateEvent } from '@berth/contracts';
import { ConversationRepository, tenantScope, toFullState } from '@berth/persistence';
import { EventBus } from './event-bus';
import { EventRecorder } from './event-recorder';

/**
 * Execution-status changes, for the gateway and the workers alike: an atomic compare-and-set, the
 * state-update event, and the announcement that drops every replica's cached counts.
 */
export class ConversationStatus {
  constructor(
    private readonly conversations: ConversationRepository,
    private readonly recorder: EventRecorder,
    private readonly bus: EventBus,
    private readonly conversationsPath: string,
  ) {}

  /** Moves the status from one of `from` to `to`; false when it was in none of them. */
  async transition(tenantId: string, conversationId: string, from: ExecutionStatus[], to: ExecutionStatus): Promise<boolean> {
    const moved = await this.conversations.setStatus(tenantScope(tenantId), conversationId, from, to);
    if (moved) await this.announce(tenantId, conversationId, to);
    return moved;
  }

  /** Records and announces a status already written (by a caller that set it with other columns). */
  async announce(tenantId: string, conversationId: string, to: ExecutionStatus): Promise<void> {
    await this.bus.announceTenantChange(tenantId);
    await this.recorder.record(conversationId, stateUpdateEvent('execution_status', to));
  }

  /** The whole state, to every subscriber (never stored): the Python client waits for it after a run. */
  async broadcastFullState(tenantId: string, conversationId: string): Promise<void> {
    const row = await this.conversations.find(tenantScope(tenantId), conversationId);
    if (!row) return;
    await this.recorder.broadcast(conversationId, stateUpdateEvent('full_state', toFullState(row, this.conversationsPath)));
  }
}
