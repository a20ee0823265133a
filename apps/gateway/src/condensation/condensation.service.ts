import { ConflictException, Injectable, InternalServerErrorException, NotFoundException } from '@nestjs/common';
import { condenserFor, llmCallUsage, View } from '@berth/agent';
import { EventBus, EventRecorder } from '@berth/bus';
import { condensationRequestEvent, OHEvent, stateUpdateEvent } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { ConversationRepository, EventLog } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import { ConversationsService } from '../conversations/conversations.service';

/** The agent server's words for this route's 404. */
const notFound = () => new NotFoundException({ detail: 'Conversation not found' });
/** A summary call the gateway makes itself ends in this time (the SDK's LLM timeout applies inside). */
const CONDENSE_TIMEOUT_MS = 10 * 60_000;

/**
 * POST …/condense, as the agent server's `condense`: a CondensationRequest is recorded and the
 * agent takes one step to handle it. A running conversation's worker takes that step (the request
 * reaches it as a run signal); for any other the gateway condenses at once, with the agent's
 * condenser, and answers when the Condensation is recorded.
 */
@Injectable()
export class CondensationService {
  constructor(
    private readonly conversations: ConversationsService,
    private readonly rows: ConversationRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly bus: EventBus,
    private readonly vault: SecretVault,
  ) {}

  async condense(p: Principal, id: string): Promise<void> {
    const row = await this.conversations.require(p, id, notFound);
    const agent = this.vault.openAgent(row.agent as Record<string, any>);
    const condenser = condenserFor(agent.condenser);
    if (!condenser) throw new ConflictException({ detail: 'Cannot condense conversation: No condenser configured' });
    if (!condenser.handlesRequests) {
      throw new ConflictException({ detail: `Cannot condense conversation: Condenser ${agent.condenser.kind} does not handle condensation requests` });
    }
    const request = condensationRequestEvent();
    await this.record(id, request);
    if (row.executionStatus === 'running') return;

    const view = View.fromEvents(await this.log.all(id));
    let condensed;
    try {
      condensed = await condenser.condense(view, AbortSignal.timeout(CONDENSE_TIMEOUT_MS));
    } catch (err) {
      throw new InternalServerErrorException({ detail: `Condensation failed: ${(err as Error).message}` });
    }
    if (!condensed) return;
    await this.record(id, condensed.condensation);
    const snapshot = await this.rows.addUsage(p, id, llmCallUsage(condensed.llm, condensed.reply));
    if (snapshot) await this.recorder.record(id, stateUpdateEvent('stats', snapshot));
  }

  /** Stored, and signalled to a run that may have started meanwhile (its history drops what it read already). */
  private async record(id: string, event: OHEvent): Promise<void> {
    await this.recorder.record(id, event);
    await this.bus.signalRun(id, { type: 'event', event });
  }
}
