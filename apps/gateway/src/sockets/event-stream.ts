import type { BusMessage } from '@berth/bus';
import type { StoredEvent } from '@berth/persistence';

export const SLOW_SUBSCRIBER = 1013;
const INTERNAL_ERROR = 1011;
/** Past any seq (an int4 column): a marker that reads the log to its end. */
const END_OF_LOG = 2 ** 31 - 1;

/** What an event stream needs from its surroundings (a socket and the event log). */
export interface EventStreamPort {
  send(json: string): void;
  /** bytes queued in the socket that the peer has not taken yet */
  bufferedBytes(): number;
  close(code: number, reason: string): void;
  /** stored events with seq in (after, upto], oldest first, at most one batch */
  range(after: number, upto: number): Promise<StoredEvent[]>;
}

/**
 * Orders one subscriber's stream: stored events go out exactly once, in sequence order, with no gap —
 * replayed history and live events never interleave out of order or repeat. A live event that arrives
 * ahead of its predecessors (two writers publishing in the other order, or history still being read)
 * waits while the missing ones are read from the log. The queue and the socket buffer are bounded: a
 * subscriber that cannot keep up is closed with 1013 and never slows anyone else.
 */
export class EventStream {
  private readonly queue: BusMessage[] = [];
  private pumping = false;
  private closed = false;
  /** the last seq the subscriber has; null until start() */
  private lastSent: number | null = null;

  constructor(
    private readonly port: EventStreamPort,
    private readonly limits: { maxQueued: number; maxBufferedBytes: number },
  ) {}

  /**
   * Starts the stream after the event `from` (0 = all history): history up to `upto` first, then
   * whatever the bus delivered since the subscription.
   */
  start(from: number, upto: number): void {
    this.lastSent = from;
    this.queue.unshift({ seq: upto, json: '' });
    this.pump();
  }

  /** Called for every bus message of the conversation, from the moment of subscription. */
  push(message: BusMessage): void {
    if (this.closed) return;
    if (this.queue.length >= this.limits.maxQueued) {
      this.overflow();
      return;
    }
    this.queue.push(message);
    this.pump();
  }

  /** Reads whatever the log holds beyond what was sent (the bus lost messages during an outage). */
  catchUp(): void {
    this.push({ seq: END_OF_LOG, json: '' });
  }

  stop(): void {
    this.closed = true;
    this.queue.length = 0;
  }

  private overflow(): void {
    this.stop();
    this.port.close(SLOW_SUBSCRIBER, 'Subscriber too slow');
  }

  private pump(): void {
    if (this.pumping || this.closed || this.lastSent === null) return;
    this.pumping = true;
    this.drain().then(
      () => {
        this.pumping = false;
        if (this.queue.length && !this.closed) this.pump();
      },
      () => {
        // The log could not be read (database away): the client reconnects and resumes where it is.
        this.pumping = false;
        this.stop();
        this.port.close(INTERNAL_ERROR, 'Event log unavailable');
      },
    );
  }

  private async drain(): Promise<void> {
    while (this.queue.length && !this.closed && this.lastSent !== null) {
      const message = this.queue.shift() as BusMessage;
      if (message.seq === null) {
        this.emit(message.json);
        continue;
      }
      if (message.seq <= this.lastSent) continue;
      // Read what is missing before this one (everything, for the history marker with empty json).
      const upto = message.json === '' ? message.seq : message.seq - 1;
      while ((this.lastSent as number) < upto && !this.closed) {
        const batch = await this.port.range(this.lastSent as number, upto);
        if (!batch.length) break;
        for (const stored of batch) {
          this.emit(JSON.stringify(stored.event));
          this.lastSent = stored.seq;
        }
      }
      if (message.json !== '' && message.seq > (this.lastSent as number) && !this.closed) {
        this.emit(message.json);
        this.lastSent = message.seq;
      }
    }
  }

  private emit(json: string): void {
    if (this.closed) return;
    this.port.send(json);
    if (this.port.bufferedBytes() > this.limits.maxBufferedBytes) this.overflow();
  }
}
