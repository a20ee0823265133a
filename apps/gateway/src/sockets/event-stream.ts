import type { BusMessage } from '@berth/bus';
import type { StoredEvent } from '@berth/persistence';

export const SLOW_SUBSCRIBER = 1013;
const INTERNAL_ERROR = 1011;
/** Past any seq (an int4 column): a marker that reads the log to its end. */
const END_OF_LOG = 2 ** 31 - 1;
/** A subscriber that takes nothing of what waits for it for this long is too slow. */
const STALL_MS = 10_000;
const POLL_MS = 5;
/**
 * How long a live event waits for its predecessors to come over the bus before they are read from
 * the log: concurrent writers publish in either order, and the late one is rarely a millisecond behind.
 */
const REORDER_MS = 50;

/** What an event stream needs from its surroundings (a socket and the event log). */
export interface EventStreamPort {
  /** one event's JSON, with its seq (null for an event that is never stored) */
  send(json: string, seq: number | null): void;
  /** bytes queued in the socket that the peer has not taken yet */
  bufferedBytes(): number;
  close(code: number, reason: string): void;
  /** stored events with seq in (after, upto], oldest first, at most one batch */
  range(after: number, upto: number): Promise<StoredEvent[]>;
}

/**
 * Orders one subscriber's stream: stored events go out exactly once, in sequence order, with no gap —
 * replayed history and live events never interleave out of order or repeat. A live event that arrives
 * ahead of its predecessors (two writers publishing in the other order) waits for them on the bus —
 * each goes before it in the queue — and they are read from the log only if they have not come within
 * REORDER_MS: concurrent writers must not cost a log read per subscriber and event. Events go out at
 * the pace the subscriber takes them (the next waits while the socket holds more than half the byte
 * budget), so a long replay never overflows a reader that keeps reading; live events that pile up
 * meanwhile are bounded by count and bytes. A subscriber that cannot keep up is closed with 1013
 * and never slows anyone else.
 */
export class EventStream {
  private readonly queue: BusMessage[] = [];
  /** JSON characters waiting in the queue */
  private queuedBytes = 0;
  private pumping = false;
  private closed = false;
  /** the last seq the subscriber has; null until start() */
  private lastSent: number | null = null;
  /** wakes a drain waiting for a late predecessor */
  private wake: (() => void) | null = null;

  constructor(
    private readonly port: EventStreamPort,
    private readonly limits: { maxQueued: number; maxBufferedBytes: number },
  ) {}

  /**
   * Starts the stream after the event `from` (0 = all history): history up to `upto` first, then
   * `between` (unstored events, such as a state snapshot), then whatever the bus delivered since the
   * subscription.
   */
  start(from: number, upto: number, between: string[] = []): void {
    this.lastSent = from;
    this.queue.unshift({ seq: upto, json: '' }, ...between.map((json) => ({ seq: null, json })));
    this.queuedBytes += between.reduce((sum, json) => sum + json.length, 0);
    this.pump();
  }

  /** Called for every bus message of the conversation, from the moment of subscription. */
  push(message: BusMessage): void {
    if (this.closed) return;
    // Queued only behind a busy pump (a log read, a socket that has not taken the last ones).
    if (this.queue.length >= this.limits.maxQueued || (this.pumping && this.queuedBytes + message.json.length > this.limits.maxBufferedBytes)) {
      this.overflow();
      return;
    }
    this.queue.splice(message.seq === null ? this.queue.length : this.position(message.seq), 0, message);
    this.queuedBytes += message.json.length;
    this.wake?.();
    this.pump();
  }

  /** Where a stored event goes in the queue: before the live events it precedes, after anything else. */
  private position(seq: number): number {
    let at = this.queue.length;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const queued = this.queue[i];
      if (queued.seq === null) continue;
      // History and catch-up markers (empty json) keep their place: they read the log up to their seq.
      if (queued.seq < seq || queued.json === '') break;
      at = i;
    }
    return at;
  }

  /** Reads whatever the log holds beyond what was sent (the bus lost messages during an outage). */
  catchUp(): void {
    this.push({ seq: END_OF_LOG, json: '' });
  }

  stop(): void {
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
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
    let gapSince = 0;
    while (this.queue.length && !this.closed && this.lastSent !== null) {
      const head = this.queue[0];
      if (head.seq !== null && head.json !== '' && head.seq > this.lastSent + 1) {
        gapSince ||= Date.now();
        const left = gapSince + REORDER_MS - Date.now();
        if (left > 0 && (await this.nextPush(left))) continue;
      }
      gapSince = 0;
      const message = this.queue.shift() as BusMessage;
      this.queuedBytes -= message.json.length;
      if (message.seq === null) {
        if (this.behind()) await this.taken();
        this.emit(message.json, null);
        continue;
      }
      if (message.seq <= this.lastSent) continue;
      // Read what is missing before this one (everything, for the history marker with empty json).
      const upto = message.json === '' ? message.seq : message.seq - 1;
      while ((this.lastSent as number) < upto && !this.closed) {
        const batch = await this.port.range(this.lastSent as number, upto);
        if (!batch.length) break;
        for (const stored of batch) {
          if (this.behind()) await this.taken();
          this.emit(JSON.stringify(stored.event), stored.seq);
          this.lastSent = stored.seq;
        }
      }
      if (message.json !== '' && message.seq > (this.lastSent as number) && !this.closed) {
        if (this.behind()) await this.taken();
        this.emit(message.json, message.seq);
        this.lastSent = message.seq;
      }
    }
  }

  /** Resolves true at the next push, false after `ms`. */
  private nextPush(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve(false);
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve(true);
      };
    });
  }

  /** Does the socket hold more than half the budget (the peer has not taken what was sent)? */
  private behind(): boolean {
    return this.port.bufferedBytes() > this.limits.maxBufferedBytes / 2;
  }

  /** Waits until the socket took most of what was sent; closes a subscriber that takes nothing for too long. */
  private async taken(): Promise<void> {
    const deadline = Date.now() + STALL_MS;
    while (!this.closed && this.behind()) {
      if (Date.now() > deadline) return this.overflow();
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  private emit(json: string, seq: number | null): void {
    if (this.closed) return;
    this.port.send(json, seq);
  }
}
