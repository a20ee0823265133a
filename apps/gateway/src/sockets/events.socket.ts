import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { isProgressFrameJson, normalizeTimestampFilter, parseUuid, serverErrorEvent, stateUpdateEvent, unsafeInputIssue } from '@berth/contracts';
import { Database, EventLog, toFullState } from '@berth/persistence';
import { RawData, WebSocket } from 'ws';
import type { Principal } from '../common/tenant.decorator';
import { ConversationsService } from '../conversations/conversations.service';
import { ConversationStreams } from './conversation-streams';
import { SocketAuth } from './socket-auth';
import { closeOnFailure, SocketRequest, WsRouter } from './ws-router';

const NOT_FOUND = 4004;
const POLICY = 1008;

/** `WS /sockets/events/{conversation_id}` (contract §4.1), with exact resume by `after_event_id`. */
@Injectable()
export class EventsSocket implements OnModuleInit {
  private readonly logger = new Logger('EventsSocket');

  constructor(
    private readonly router: WsRouter,
    private readonly socketAuth: SocketAuth,
    private readonly db: Database,
    private readonly log: EventLog,
    private readonly conversations: ConversationsService,
    private readonly streams: ConversationStreams,
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
    // Token progress frames are the session socket's; this one has StreamingDeltaEvents.
    const stream = await this.streams.subscribe(ws, id, (json) => (isProgressFrameJson(json) ? null : json));
    if (!stream) return;
    const onMessage = (data: RawData, isBinary: boolean) =>
      void this.streams.receive(principal, id, isBinary ? null : data.toString('utf8'), (code, detail) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(serverErrorEvent(code, detail)));
      });
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
}
