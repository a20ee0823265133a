import { HttpException, Inject, Injectable, Logger } from '@nestjs/common';
import { EventBus } from '@berth/bus';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { jsonSyntaxMessage, SendMessageRequestSchema, unsafeInputIssue } from '@berth/contracts';
import { EventLog } from '@berth/persistence';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Principal } from '../common/tenant.decorator';
import { EventsService } from '../events/events.service';
import { EventStream, SLOW_SUBSCRIBER } from './event-stream';
import { isAuthFrame } from './socket-auth';
import { WsRouter } from './ws-router';

const TRY_AGAIN_LATER = 1013;
const MAX_QUEUED_MESSAGES = 10_000;

/** The frame a socket sends for one event (its JSON and seq, null if never stored), or null to send nothing. */
export type FrameEncoder = (json: string, seq: number | null) => string | null;

/**
 * A conversation's event stream to one socket, for every socket that streams events
 * (`/sockets/events`, `/sockets/session`): the per-conversation subscriber limit (shared by both, as
 * OpenHands' one pub/sub is), the bus subscription made before anything is read, the exact
 * replay-then-live ordering of EventStream, its resume after a bus outage, and client frames.
 */
@Injectable()
export class ConversationStreams {
  private readonly logger = new Logger('ConversationStreams');
  private readonly subscribers = new Map<string, number>();

  constructor(
    private readonly log: EventLog,
    private readonly bus: EventBus,
    private readonly events: EventsService,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  /**
   * Subscribes `ws` to conversation `id`; the stream sends nothing until its start(). Null when
   * refused (closed 1013: the conversation has as many subscribers as allowed) or when the socket
   * closed meanwhile. A slow consumer is closed 1013 with `slowReason`.
   */
  async subscribe(ws: WebSocket, id: string, encode: FrameEncoder, slowReason?: string): Promise<EventStream | null> {
    if ((this.subscribers.get(id) ?? 0) >= this.config.wsMaxSubscribers) {
      ws.close(TRY_AGAIN_LATER, 'Too many connections for this conversation');
      return null;
    }
    this.subscribers.set(id, (this.subscribers.get(id) ?? 0) + 1);
    // The frames of one turn of the event loop leave in one write: under load several events reach a
    // subscriber in one turn, and a write (a syscall) per frame and subscriber is most of the fan-out's CPU.
    const socket = (ws as unknown as { _socket: Duplex })._socket;
    let corked = false;
    const uncork = () => {
      corked = false;
      socket.uncork();
    };
    const stream = new EventStream(
      {
        send: (json, seq) => {
          const frame = encode(json, seq);
          if (frame === null) return;
          if (!corked) {
            corked = true;
            socket.cork();
            setImmediate(uncork);
          }
          ws.send(frame);
        },
        bufferedBytes: () => ws.bufferedAmount,
        close: (code, reason) => WsRouter.closeOrDrop(ws, code, code === SLOW_SUBSCRIBER && slowReason ? slowReason : reason),
        range: (after, upto) => this.log.range(id, after, upto),
      },
      { maxQueued: MAX_QUEUED_MESSAGES, maxBufferedBytes: this.config.wsMaxBufferBytes },
    );
    let unsubscribe = () => undefined as void;
    let stopCatchingUp = () => undefined as void;
    const release = () => {
      stream.stop();
      unsubscribe();
      stopCatchingUp();
      const left = (this.subscribers.get(id) ?? 1) - 1;
      if (left) this.subscribers.set(id, left);
      else this.subscribers.delete(id);
    };
    try {
      unsubscribe = await this.bus.subscribe(id, (m) => stream.push(m));
    } catch (err) {
      release();
      throw err;
    }
    stopCatchingUp = this.bus.onResume(() => stream.catchUp());
    if (ws.readyState !== WebSocket.OPEN) {
      release();
      return null;
    }
    ws.once('close', release);
    return stream;
  }

  /**
   * A client frame: a user message (appended and run), a redundant auth frame (ignored), or else a
   * `reply` with an error code and detail.
   */
  async receive(principal: Principal, id: string, text: string | null, reply: (code: string, detail: string) => void): Promise<void> {
    let frame: unknown;
    try {
      if (text === null) throw new SyntaxError('binary frames are not accepted');
      frame = JSON.parse(text);
    } catch (err) {
      reply('JSONDecodeError', jsonSyntaxMessage((err as Error).message));
      return;
    }
    if (isAuthFrame(frame)) return;
    // As for HTTP bodies (UnsafeInputInterceptor): the database cannot hold a NUL, nor should anything walk 5,000 levels.
    const unsafe = unsafeInputIssue(frame, 'message');
    if (unsafe) {
      reply('ValidationError', `${unsafe.loc.join('.')}: ${unsafe.msg}`);
      return;
    }
    const parsed = SendMessageRequestSchema.safeParse(frame);
    if (!parsed.success) {
      reply('ValidationError', parsed.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; '));
      return;
    }
    try {
      await this.events.sendMessage(principal, id, { ...parsed.data, run: true });
    } catch (err) {
      // A refusal says why; anything else is logged, not shown (it may be database text).
      if (err instanceof HttpException) return reply(err.constructor.name, err.message);
      this.logger.error(`message on socket failed: ${(err as Error).message.split('\n').pop()}`);
      reply('InternalError', 'Internal Server Error');
    }
  }
}
