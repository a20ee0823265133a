import { Injectable, NotFoundException } from '@nestjs/common';
import { ConversationStatus, EventBus, EventRecorder } from '@berth/bus';
import {
  ACTION_ANSWER_KINDS,
  EventSearchQuery,
  normalizeTimestampFilter,
  OHEvent,
  SendMessageRequest,
  stateUpdateEvent,
  unmatchedActions,
  userRejectObservation,
} from '@berth/contracts';
import { userMessage } from '@berth/agent';
import { ConversationRepository, EventFilter, EventLog } from '@berth/persistence';
import { ConversationsService } from '../conversations/conversations.service';
import { RunControlService } from '../conversations/run-control.service';
import { validationError } from '../common/zod-validation.pipe';
import type { Principal } from '../common/tenant.decorator';
import { ServerInfoService } from '../health/server-info.service';
import { ConversationTitles } from '../conversation-ops/conversation-titles.service';

/** Events router's "not found" names the conversation (contract §3.3). */
const notFound = (id: string) => new NotFoundException({ detail: `Conversation not found: ${id}` });

/** Kinds that answer an ActionEvent (by action_id or tool_call_id). */

@Injectable()
export class EventsService {
  constructor(
    private readonly rows: ConversationRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly conversations: ConversationsService,
    private readonly runs: RunControlService,
    private readonly status: ConversationStatus,
    private readonly serverInfo: ServerInfoService,
    private readonly titles: ConversationTitles,
    private readonly bus: EventBus,
  ) {}

  private async requireConversation(p: Principal, id: string) {
    return this.conversations.require(p, id, notFound);
  }

  private filterOf(q: Pick<EventSearchQuery, 'kind' | 'source' | 'body' | 'timestamp__gte' | 'timestamp__lt'>): EventFilter {
    const ts = (name: 'timestamp__gte' | 'timestamp__lt') => {
      const raw = q[name];
      if (raw === undefined) return undefined;
      const value = normalizeTimestampFilter(raw);
      if (!value) throw validationError('query', [name], 'Input should be a valid datetime', 'datetime_parsing', raw);
      return value;
    };
    return { kind: q.kind, source: q.source, body: q.body, timestampGte: ts('timestamp__gte'), timestampLt: ts('timestamp__lt') };
  }

  /**
   * A page as JSON text: `{"items":[…],"next_page_id":…}`, each event spliced in as stored (the
   * same bytes as serializing the parsed events, without parsing and serializing them again).
   */
  async searchJson(p: Principal, id: string, q: EventSearchQuery): Promise<string> {
    await this.requireConversation(p, id);
    const page = await this.log.searchJson(id, {
      ...this.filterOf(q),
      pageId: q.page_id,
      limit: q.limit,
      descending: q.sort_order === 'TIMESTAMP_DESC',
    });
    return `{"items":${page.items},"next_page_id":${JSON.stringify(page.nextPageId)}}`;
  }

  async count(p: Principal, id: string, q: Pick<EventSearchQuery, 'kind' | 'source' | 'body' | 'timestamp__gte' | 'timestamp__lt'>) {
    await this.requireConversation(p, id);
    return this.log.count(id, this.filterOf(q));
  }

  async get(p: Principal, id: string, eventId: string): Promise<OHEvent> {
    await this.requireConversation(p, id);
    const stored = await this.log.get(id, eventId);
    if (!stored) throw new NotFoundException({ detail: 'Not Found' });
    return stored.event;
  }

  async batch(p: Principal, id: string, eventIds: string[]) {
    await this.requireConversation(p, id);
    return this.log.getMany(id, eventIds);
  }

  /**
   * Appends a user message. A finished or stuck conversation goes back to idle; `run` (or a message
   * sent on the socket) queues a run unless one is already going, which will read the message (no
   * 409, as OpenHands).
   */
  async sendMessage(p: Principal, id: string, req: SendMessageRequest): Promise<OHEvent> {
    const conversation = await this.requireConversation(p, id);
    // OpenHands' order: the agent made ready (SystemPromptEvent), a finished or stuck conversation back to idle, then the message.
    const ready = await this.conversations.prepareAgent(conversation);
    await this.status.transition(p.tenantId, id, 'reopen');
    const { event: message, activated } = userMessage(ready.agent as Record<string, unknown>, ready.state as Record<string, unknown>, req.content, req.sender);
    await this.recorder.record(id, message);
    if (message.activated_skills && (message.activated_skills as string[]).length) {
      // Each knowledge skill is injected once per conversation (the SDK's activated_knowledge_skills).
      await this.rows.modify(p, id, (row) => ({ state: { ...(row.state as object), activated_knowledge_skills: [...new Set([...(((row.state as Record<string, unknown>).activated_knowledge_skills as string[]) ?? []), ...activated])] } }));
    }
    // A run going on reads it at its next step.
    await this.bus.signalRun(id, { type: 'event', event: message });
    this.serverInfo.touch();
    if (!(await this.rows.update(p, id, { lastUserMessageId: message.id }))) throw notFound(id);
    // autotitle (on unless the client turned it off): an LLM names an untitled conversation from this message, in the background.
    this.titles.afterUserMessage(conversation, req.content);
    await this.recorder.record(id, stateUpdateEvent('last_user_message_id', message.id));
    if (req.run) await this.runs.startAfterMessage(p.tenantId, id);
    return message;
  }

  /** Accept runs the pending actions; reject answers each with a UserRejectObservation and idles. */
  async respondToConfirmation(p: Principal, id: string, accept: boolean, reason: string): Promise<void> {
    await this.requireConversation(p, id);
    if (accept) {
      await this.runs.start(p.tenantId, id);
      return;
    }
    for (const action of await this.pendingActions(id)) await this.recorder.record(id, userRejectObservation(action, reason));
    await this.status.transition(p.tenantId, id, 'reject');
  }

  /** ActionEvents that no observation, rejection or error has answered yet (of the latest 500 actions and answers). */
  private async pendingActions(id: string): Promise<OHEvent[]> {
    return unmatchedActions(await this.log.latest(id, 500, ['ActionEvent', ...ACTION_ANSWER_KINDS]));
  }
}
