import { OHEvent } from '@berth/contracts';
import { EventLog } from '@berth/persistence';
import { EventBus } from './event-bus';

/** Persist first, then publish: a subscriber never sees an event that a reload could not find. */
export class EventRecorder {
  constructor(
    private readonly log: EventLog,
    private readonly bus: EventBus,
  ) {}

  async record(conversationId: string, event: OHEvent): Promise<number> {
    const seq = await this.log.append(conversationId, event);
    await this.bus.publish(conversationId, { seq, json: JSON.stringify(event) });
    return seq;
  }

  /** Publishes events already stored (in a transaction that has committed). */
  async publish(conversationId: string, stored: { seq: number; event: OHEvent }[]): Promise<void> {
    for (const { seq, event } of stored) await this.bus.publish(conversationId, { seq, json: JSON.stringify(event) });
  }

  /** Events that are never stored (full-state snapshots, streaming deltas). */
  async broadcast(conversationId: string, event: OHEvent): Promise<void> {
    await this.bus.publish(conversationId, { seq: null, json: JSON.stringify(event) });
  }
}
