import { Logger } from '@nestjs/common';
import { ExecutionStatus, STATUS_TRANSITIONS, stateUpdateEvent, TransitionBy } from '@berth/contracts';
import { ConversationRepository, tenantScope, toFullState } from '@berth/persistence';
import { EventBus } from './event-bus';
import { EventRecorder } from './event-recorder';

/**
 * Execution-status changes a client causes (through the gateway): an atomic compare-and-set of one
 * state-machine transition, the state-update event, and the announcement that drops every replica's
 * cached counts. A run's own transitions go through its fenced writes (AgentRunner), announced here.
 */
export class ConversationStatus {
  private readonly logger = new Logger('ConversationStatus');

  constructor(
    private readonly conversations: ConversationRepository,
    private readonly recorder: EventRecorder,
    private readonly bus: EventBus,
    private readonly conversationsPath: string,
  ) {}

  /** Applies one transition of the state machine; false when the status was in none it starts from. */
  async transition(tenantId: string, conversationId: string, transition: TransitionBy<'client'>): Promise<boolean> {
    const moved = await this.conversations.setStatus(tenantScope(tenantId), conversationId, transition);
    if (moved) {
      this.logger.log({ msg: 'conversation status', conversation_id: conversationId, tenant_id: tenantId, transition, status: STATUS_TRANSITIONS[transition].to });
      await this.announce(tenantId, conversationId, STATUS_TRANSITIONS[transition].to);
    }
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
