import { HttpException, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { EventBus } from '@berth/bus';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { jsonSyntaxMessage, normalizeTimestampFilter, parseUuid, SendMessageRequestSchema, serverErrorEvent, stateUpdateEvent, unsafeInputIssue } from '@berth/contracts';
import { Database, EventLog } from '@berth/persistence';
import { RawData, WebSocket } from 'ws';
import type { Principal } from '../common/tenant.decorator';
import { ConversationsService } from '../conversations/conversations.service';
import { toFullState } from '@berth/persistence';
import { EventsService } from '../events/events.service';
import { EventStream } from './event-stream';
import { isAuthFrame, SocketAuth } from './socket-auth';
import { closeOnFailure, SocketRequest, WsRouter } from './ws-router';

const NOT_FOUND = 4004;
const POLICY = 1008;
const TRY_AGAIN_LATER = 1013;
const MAX_QUEUED_MESSAGES = 10_000;

/** `WS /sockets/events/{conversation_id}` (contract §4.1), with exact resume by `after_event_id`. */
@Injectable()
export class EventsSocket implements OnModuleInit {
  private readonly logger = new Logger('EventsSocket');
  private readonly subscribers = new Map<string, number>();

  constructor(
    private readonly router: WsRouter,
    private readonly socketAuth: SocketAuth,
    private readonly db: Database,
    private readonly log: EventLog,
    private readonly bus: EventBus,
    private readonly conversations: ConversationsService,
    private readonly events: EventsService,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  onModuleInit(): void {
    this.router.register('/sockets/events/:conversation_id', (ws, req) => {
      this.handle(ws, req).catch((err: Error) => closeOnFailure(this.logger, ws, 'event socket', err));
    });
  }

  private async handle(ws: WebSocket, req: SocketRequest): Promise<void> {
    // Frames that come before the socket is set up (a message sent right after the handshake) wait
    // for it, as OpenHands' receive queue keeps them; an auth frame among them is ignored there.
    const early: { data: RawData; isBinary: boolean }[] = [];
    const hold = (data: RawData, isBinary: boolean) => early.push({ data, isBinary });
    ws.on('message', hold);
    await this.db.ready;
    const authenticated = await this.socketAuth.authenticate(ws, req);
    if (!authenticated || ws.readyState !== WebSocket.OPEN) return;
    const principal: Principal = req.sandboxId ? { ...authenticated, sandboxId: req.sandboxId } : authenticated;

    const id = parseUuid(req.params.conversation_id ?? '');
    const row = id ? await this.conversations.find(principal, id) : null;
    if (!id || !row) {
      ws.close(NOT_FOUND, 'Conversation not found');
      return;
    }
    const start = await this.resumePoint(id, req.query);
    if (typeof start === 'string') {
      ws.close(POLICY, start);
      return;
    }
    if ((this.subscribers.get(id) ?? 0) >= this.config.wsMaxSubscribers) {
      ws.close(TRY_AGAIN_LATER, 'Too many connections for this conversation');
      return;
    }
    this.subscribers.set(id, (this.subscribers.get(id) ?? 0) + 1);

    const stream = new EventStream(
      {
        send: (json) => ws.send(json),
        bufferedBytes: () => ws.bufferedAmount,
        close: (code, reason) => WsRouter.closeOrDrop(ws, code, reason),
        range: (after, upto) => this.log.range(id, after, upto),
      },
      { maxQueued: MAX_QUEUED_MESSAGES, maxBufferedBytes: this.config.wsMaxBufferBytes },
    );
    // Subscribe before reading the state, so nothing published in between is missed.
    const unsubscribe = await this.bus.subscribe(id, (m) => stream.push(m));
    const stopCatchingUp = this.bus.onResume(() => stream.catchUp());
    ws.on('close', () => {
      stream.stop();
      unsubscribe();
      stopCatchingUp();
      const left = (this.subscribers.get(id) ?? 1) - 1;
      if (left) this.subscribers.set(id, left);
      else this.subscribers.delete(id);
    });
    const onMessage = (data: RawData, isBinary: boolean) => void this.onFrame(ws, principal, id, isBinary ? null : data.toString('utf8'));
    ws.off('message', hold);
    ws.on('message', onMessage);

    // The first frame is the whole state: clients take it as "subscribed".
    const current = await this.conversations.find(principal, id);
    if (!current || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(stateUpdateEvent('full_state', toFullState(current, this.config.conversationsPath))));
    // Without a replay request only what happens from now on is sent.
    stream.start(start ?? current.lastSeq, current.lastSeq);
    for (const frame of early.splice(0)) onMessage(frame.data, frame.isBinary);
  }

  /**
   * Where replay starts: the seq after which events are sent, null for no replay, or a reason to
   * refuse. `after_event_id` (Berth) resumes exactly after that event.
   */
  private async resumePoint(id: string, query: URLSearchParams): Promise<number | null | string> {
    if (unsafeInputIssue(Object.fromEntries(query), 'query')) return 'The query must not contain NUL characters';
    const afterEventId = query.get('after_event_id');
    if (afterEventId) {
      const stored = await this.log.get(id, afterEventId);
      return stored ? stored.seq : 'Unknown after_event_id';
    }
    const mode = query.get('resend_mode') ?? (query.get('resend_all') === 'true' ? 'all' : null);
    if (mode === null) return null;
    if (mode === 'all') return 0;
    if (mode !== 'since') return 'resend_mode must be "all" or "since"';
    const raw = query.get('after_timestamp');
    const after = raw ? normalizeTimestampFilter(raw) : null;
    if (!after) return 'resend_mode=since needs a valid after_timestamp';
    return this.log.seqBefore(id, after);
  }

  /** A client frame: a user message (appended and run), a redundant auth frame, or an error reply. */
  private async onFrame(ws: WebSocket, principal: Principal, id: string, text: string | null): Promise<void> {
    const reply = (code: string, detail: string) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(serverErrorEvent(code, detail)));
    };
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
