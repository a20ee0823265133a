import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { bareKind, isProgressFrameJson, parseUuid, SessionErrorFrame, SessionSocketQuerySchema, stateUpdateEvent } from '@berth/contracts';
import { Database, toFullState } from '@berth/persistence';
import { WebSocket } from 'ws';
import type { Principal } from '../common/tenant.decorator';
import { ConversationsService } from '../conversations/conversations.service';
import { ConversationStreams, FrameEncoder } from './conversation-streams';
import { SocketAuth } from './socket-auth';
import { closeOnFailure, SocketRequest, WsRouter } from './ws-router';

const NOT_FOUND = 4004;

/**
 * A frame of the session socket for one event of the stream. Wire seqs are log indexes, counted
 * from 0 as OpenHands' file names count them; the event log's seqs count from 1. Token progress
 * comes as frames of its own (item_started, delta, item_aborted), sent as they are; StreamingDeltaEvents
 * never ride this channel.
 */
const sessionFrame: FrameEncoder = (json, seq) => {
  if (seq !== null) return `{"type":"durable","seq":${seq - 1},"event":${json}}`;
  if (isProgressFrameJson(json)) return json;
  if (bareKind(String((JSON.parse(json) as { kind?: unknown }).kind)) === 'StreamingDeltaEvent') return null;
  return `{"type":"transient","event":${json}}`;
};

/** The `after_seq` of a query (undefined when absent), or null when it is not an integer. */
function afterSeqOf(query: URLSearchParams): bigint | undefined | null {
  const raw = query.get('after_seq');
  const parsed = SessionSocketQuerySchema.safeParse(raw === null ? {} : { after_seq: raw });
  return parsed.success ? parsed.data.after_seq : null;
}

/**
 * `WS /sockets/session/{conversation_id}` (OpenHands 1.58): events in envelopes on one ordered
 * channel — a `sync` frame naming the replay range, the stored events after `after_seq` as `durable`
 * frames, a `transient` full-state snapshot, then live frames; `error` frames answer bad client
 * frames. Replay, live delivery, fan-out across replicas and the slow-consumer close (1013
 * `slow_consumer`) are the event socket's own (ConversationStreams, EventStream).
 */
@Injectable()
export class SessionSocket implements OnModuleInit {
  private readonly logger = new Logger('SessionSocket');

  constructor(
    private readonly router: WsRouter,
    private readonly socketAuth: SocketAuth,
    private readonly db: Database,
    private readonly conversations: ConversationsService,
    private readonly streams: ConversationStreams,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  onModuleInit(): void {
    this.router.register(
      '/sockets/session/:conversation_id',
      (ws, req) => {
        this.handle(ws, req).catch((err: Error) => closeOnFailure(this.logger, ws, 'session socket', err));
      },
      (params, query) => parseUuid(params.conversation_id ?? '') !== null && afterSeqOf(query) !== null,
    );
  }

  private async handle(ws: WebSocket, req: SocketRequest): Promise<void> {
    await this.db.ready;
    const authenticated = await this.socketAuth.authenticate(ws, req);
    if (!authenticated || ws.readyState !== WebSocket.OPEN) return;
    const principal: Principal = req.sandboxId ? { ...authenticated, sandboxId: req.sandboxId } : authenticated;

    const id = parseUuid(req.params.conversation_id ?? '');
    const afterSeq = afterSeqOf(req.query);
    if (!id || afterSeq === null || !(await this.conversations.find(principal, id))) {
      ws.close(NOT_FOUND, 'Conversation not found');
      return;
    }
    const stream = await this.streams.subscribe(ws, id, sessionFrame, 'slow_consumer');
    if (!stream) return;
    ws.on('message', (data, isBinary) =>
      void this.streams.receive(principal, id, isBinary ? null : data.toString('utf8'), (code, detail) => {
        const frame: SessionErrorFrame = { type: 'error', code, detail };
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
      }),
    );

    // Read after subscribing: anything stored later arrives on the bus, and the stream sends each seq once.
    const current = await this.conversations.find(principal, id);
    if (!current || ws.readyState !== WebSocket.OPEN) return;
    const last = current.lastSeq;
    // Bigints and seqs are written as JSON numbers, so a huge cursor is echoed exactly.
    ws.send(`{"type":"sync"${afterSeq === undefined ? '' : `,"from_seq":${afterSeq}`}${last ? `,"through_seq":${last - 1}` : ''}}`);
    // Without a cursor only what happens from now on; wire seq n is log seq n + 1.
    const from = afterSeq === undefined ? last : Number(clamp(afterSeq + 1n, 0n, BigInt(last)));
    stream.start(from, last, [JSON.stringify(stateUpdateEvent('full_state', toFullState(current, this.config.conversationsPath)))]);
  }
}

function clamp(value: bigint, min: bigint, max: bigint): bigint {
  return value < min ? min : value > max ? max : value;
}
