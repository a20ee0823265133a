import type { OHEvent } from '@berth/contracts';
import type OpenAI from 'openai';
import { MessageBuilder } from './history';
import { isStuck } from './stuck-detector';
import { View } from './view';

/** The stuck detector reads this many recent steps' events at most (it needs the last four steps). */
const STUCK_WINDOW = 64;

/** Kinds that come from outside the loop (a gateway) and reach it as run signals. */
const isDelivered = (e: OHEvent) => (e.kind === 'MessageEvent' && e.source === 'user') || e.kind === 'CondensationRequest';

/**
 * A run's history, kept in memory: read from the event log once when the run starts (or a worker
 * takes it over), then appended to as the loop records events and as a gateway's events arrive,
 * so a step costs the same at the thousandth event as at the tenth. It holds the View (with
 * condensations applied as they come), the chat messages built from it, and a bounded window of
 * recent events for the stuck detector.
 */
export class ConversationHistory {
  readonly view = new View();
  private builder = new MessageBuilder();
  private recent: OHEvent[] = [];
  /** ids of delivered kinds already in the history (a signal and the initial read may both bring one) */
  private readonly delivered = new Set<string>();
  private readonly inbox: OHEvent[] = [];

  /** An event the loop recorded (or read from the log). */
  add(event: OHEvent): void {
    if (isDelivered(event)) {
      if (this.delivered.has(event.id)) return;
      this.delivered.add(event.id);
    }
    if (this.view.append(event)) {
      // A Condensation changed the view's past: the messages are rebuilt from the (bounded) view.
      this.builder = new MessageBuilder();
      for (const e of this.view.events) this.builder.add(e);
    } else if (this.view.events.at(-1) === event) this.builder.add(event);
    if (event.kind === 'ActionEvent' || event.kind === 'ObservationEvent' || event.kind === 'AgentErrorEvent' || (event.kind === 'MessageEvent' && event.source === 'user')) {
      this.recent.push(event);
      if (this.recent.length > 2 * STUCK_WINDOW) this.recent = this.recent.slice(-STUCK_WINDOW);
    }
  }

  /**
   * An event a gateway stored while the loop runs: taken in at the start of the next step, so a
   * message sent mid-step never lands between an action and its observation.
   */
  deliver(event: OHEvent): void {
    this.inbox.push(event);
  }

  /** Takes in what was delivered since the last step. */
  takeDelivered(): void {
    for (const event of this.inbox.splice(0)) this.add(event);
  }

  knows(eventId: string): boolean {
    return this.delivered.has(eventId) || this.inbox.some((e) => e.id === eventId);
  }

  messages(): OpenAI.Chat.Completions.ChatCompletionMessageParam[] {
    return this.builder.messages();
  }

  isStuck(): boolean {
    return isStuck(this.recent);
  }
}
