import { Logger } from '@nestjs/common';
import { OHEvent, SessionProgressFrame } from '@berth/contracts';
import { eventsRecorded } from '@berth/metrics';
import { EventLog } from '@berth/persistence';
import { EventBus } from './event-bus';

/** Told of events once they are stored (webhook delivery); never allowed to fail the recording. */
export type StoredEventsListener = (conversationId: string, seqs: number[]) => Promise<void>;

/** Persist first, then publish: a subscriber never sees an event that a reload could not find. */
export class EventRecorder {
  private readonly listeners: StoredEventsListener[] = [];
  private readonly logger = new Logger('EventRecorder');

  constructor(
    private readonly log: EventLog,
    private readonly bus: EventBus,
  ) {}

  onStored(listener: StoredEventsListener): void {
    this.listeners.push(listener);
  }

  async record(conversationId: string, event: OHEvent): Promise<number> {
    const seq = await this.log.append(conversationId, event);
    eventsRecorded.inc();
    await this.publishStored(conversationId, seq, event);
    await this.notify(conversationId, [seq]);
    return seq;
  }

  /** Publishes events already stored (in a transaction that has committed). */
  async publish(conversationId: string, stored: { seq: number; event: OHEvent }[]): Promise<void> {
    eventsRecorded.inc(stored.length);
    for (const { seq, event } of stored) await this.publishStored(conversationId, seq, event);
    if (stored.length) await this.notify(conversationId, stored.map((s) => s.seq));
  }

  /**
   * A stored event is recorded whether or not the bus takes it: subscribers read the log after a gap
   * and after the bus comes back (EventBus.onResume), so a bus outage must not fail the write.
   */
  private async publishStored(conversationId: string, seq: number, event: OHEvent): Promise<void> {
    try {
      await this.bus.publish(conversationId, { seq, json: JSON.stringify(event) });
    } catch (err) {
      this.logger.warn(`event ${seq} of ${conversationId} stored, not published (subscribers read it from the log): ${(err as Error).message}`);
    }
  }

  /** Token progress for the session socket (item_started, delta, item_aborted), never stored. */
  async broadcastProgress(conversationId: string, frame: SessionProgressFrame): Promise<void> {
    await this.bus.publish(conversationId, { seq: null, json: JSON.stringify(frame) });
  }

  /** Events that are never stored (full-state snapshots, streaming deltas). */
  async broadcast(conversationId: string, event: OHEvent): Promise<void> {
    await this.bus.publish(conversationId, { seq: null, json: JSON.stringify(event) });
  }

  private async notify(conversationId: string, seqs: number[]): Promise<void> {
    for (const listener of this.listeners) {
      await listener(conversationId, seqs).catch((err: Error) => this.logger.warn(`after storing events of ${conversationId}: ${err.message}`));
    }
  }
}
