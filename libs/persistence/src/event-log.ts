import { bareKind, messageSearchText, OHEvent } from '@berth/contracts';
import { Database } from './database';
import { RunFenceLost } from './conversation-repository';
import { Prisma } from './generated/prisma/client';

export interface StoredEvent {
  seq: number;
  event: OHEvent;
}

export interface EventFilter {
  kind?: string;
  source?: string;
  /** case-insensitive substring of message text */
  body?: string;
  timestampGte?: string;
  timestampLt?: string;
}

export interface EventPageRequest extends EventFilter {
  pageId?: string;
  limit: number;
  descending: boolean;
}

/** The filters as SQL; `body` is a plain substring test (no LIKE wildcards), as OpenHands' `in`. */
function whereSqlOf(conversationId: string, f: EventFilter): Prisma.Sql {
  const parts = [Prisma.sql`"conversation_id" = ${conversationId}::uuid`];
  if (f.kind) parts.push(Prisma.sql`"kind" = ${bareKind(f.kind)}`);
  if (f.source) parts.push(Prisma.sql`"source" = ${f.source}`);
  if (f.body !== undefined) parts.push(Prisma.sql`strpos("body", ${f.body.toLowerCase()}) > 0`);
  if (f.timestampGte) parts.push(Prisma.sql`"timestamp" >= ${f.timestampGte}`);
  if (f.timestampLt) parts.push(Prisma.sql`"timestamp" < ${f.timestampLt}`);
  return Prisma.join(parts, ' AND ');
}

/** The append-only, per-conversation numbered event log. */
export class EventLog {
  constructor(private readonly db: Database) {}

  /**
   * Appends one event and returns its sequence number. The conversation row's counter is bumped in
   * the same statement, so concurrent writers (gateway and worker) get distinct, gap-free numbers.
   * Per-field state updates do not move `updated_at`, as in OpenHands. With `fence` (a run's loop),
   * the event is stored only while that run still owns the conversation, else RunFenceLost.
   * An event stamped before the conversation's newest one (written meanwhile by another writer) takes
   * that one's timestamp, here and in `event`: clients order events by timestamp (the OpenHands SDK's
   * event list does), and it must agree with seq.
   */
  async append(conversationId: string, event: OHEvent, client: Prisma.TransactionClient = this.db.prisma, fence?: number): Promise<number> {
    const kind = bareKind(event.kind);
    const touches = kind !== 'ConversationStateUpdateEvent';
    const json = JSON.stringify(event);
    const rows = await client.$queryRaw<{ seq: number; timestamp: string }[]>`
      WITH c AS (
        UPDATE "conversations"
           SET "last_seq" = "last_seq" + 1,
               "leaf_event_id" = ${event.id},
               "last_event_timestamp" = GREATEST(COALESCE("last_event_timestamp", '') COLLATE "C", ${event.timestamp}::text),
               "updated_at" = CASE WHEN ${touches} THEN now() ELSE "updated_at" END
         WHERE "id" = ${conversationId}::uuid AND (${fence ?? null}::int IS NULL OR "run_fence" = ${fence ?? null}::int)
        RETURNING "last_seq", "last_event_timestamp"
      )
      INSERT INTO "events" ("conversation_id", "seq", "id", "kind", "source", "timestamp", "body", "payload")
      SELECT ${conversationId}::uuid, c."last_seq", ${event.id}, ${kind}, ${event.source}, c."last_event_timestamp",
             ${messageSearchText(event)},
             CASE WHEN c."last_event_timestamp" = ${event.timestamp}::text THEN ${json}::json
                  ELSE jsonb_set(${json}::jsonb, '{timestamp}', to_jsonb(c."last_event_timestamp"))::json END
        FROM c
      RETURNING "seq", "timestamp"`;
    if (!rows.length) {
      if (fence !== undefined && (await client.conversation.count({ where: { id: conversationId } }))) throw new RunFenceLost(conversationId);
      throw new Error(`conversation ${conversationId} does not exist`);
    }
    event.timestamp = rows[0].timestamp;
    return Number(rows[0].seq);
  }

  async get(conversationId: string, eventId: string): Promise<StoredEvent | null> {
    const row = await this.db.prisma.event.findUnique({
      where: { conversationId_id: { conversationId, id: eventId } },
      select: { seq: true, payload: true },
    });
    return row ? { seq: row.seq, event: row.payload as unknown as OHEvent } : null;
  }

  async getMany(conversationId: string, eventIds: string[]): Promise<(OHEvent | null)[]> {
    if (!eventIds.length) return [];
    const rows = await this.db.prisma.event.findMany({
      where: { conversationId, id: { in: eventIds } },
      select: { id: true, payload: true },
    });
    const byId = new Map(rows.map((r) => [r.id, r.payload as unknown as OHEvent]));
    return eventIds.map((id) => byId.get(id) ?? null);
  }

  /** A page of events; `pageId` is the id of the first event to return (unknown → from the start). */
  async search(conversationId: string, req: EventPageRequest): Promise<{ items: OHEvent[]; nextPageId: string | null }> {
    const page = await this.searchJson(conversationId, req);
    return { items: JSON.parse(page.items) as OHEvent[], nextPageId: page.nextPageId };
  }

  /**
   * `search` with the page's events as one JSON array text, made of the stored texts unparsed (the
   * payload column is `json`, which keeps the text `append` wrote), for an answer to splice in as
   * is. One round trip and one row: the page start is looked up and the page aggregated in the
   * statement (a row per event costs more in the driver than the database's work).
   */
  async searchJson(conversationId: string, req: EventPageRequest): Promise<{ items: string; nextPageId: string | null }> {
    const where = [whereSqlOf(conversationId, req)];
    if (req.pageId) {
      const start = Prisma.sql`(SELECT "seq" FROM "events" WHERE "conversation_id" = ${conversationId}::uuid AND "id" = ${req.pageId})`;
      where.push(req.descending ? Prisma.sql`"seq" <= COALESCE(${start}, 2147483647)` : Prisma.sql`"seq" >= COALESCE(${start}, 0)`);
    }
    const order = req.descending ? Prisma.sql`DESC` : Prisma.sql`ASC`;
    const [row] = await this.db.prisma.$queryRaw<{ items: string; next: string | null }[]>`
      SELECT '[' || COALESCE(string_agg(p."payload"::text, ',' ORDER BY p."n") FILTER (WHERE p."n" <= ${req.limit}), '') || ']' AS "items",
             max(p."id") FILTER (WHERE p."n" > ${req.limit}) AS "next"
        FROM (SELECT "id", "payload", row_number() OVER (ORDER BY "seq" ${order}) AS "n"
                FROM "events"
               WHERE ${Prisma.join(where, ' AND ')}
               ORDER BY "seq" ${order}
               LIMIT ${req.limit + 1}) p`;
    return { items: row.items, nextPageId: row.next };
  }

  async count(conversationId: string, filter: EventFilter): Promise<number> {
    const rows = await this.db.prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS "n" FROM "events" WHERE ${whereSqlOf(conversationId, filter)}`;
    return Number(rows[0].n);
  }

  /** Events with seq in (afterSeq, uptoSeq], oldest first, in batches — for socket replay. */
  async range(conversationId: string, afterSeq: number, uptoSeq: number, batch = 200): Promise<StoredEvent[]> {
    const rows = await this.db.prisma.event.findMany({
      where: { conversationId, seq: { gt: afterSeq, lte: uptoSeq } },
      orderBy: { seq: 'asc' },
      take: batch,
      select: { seq: true, payload: true },
    });
    return rows.map((r) => ({ seq: r.seq, event: r.payload as unknown as OHEvent }));
  }

  /** Highest seq whose timestamp is before `timestamp` (replay `since`). */
  async seqBefore(conversationId: string, timestamp: string): Promise<number> {
    const row = await this.db.prisma.event.findFirst({
      where: { conversationId, timestamp: { gte: timestamp } },
      orderBy: { seq: 'asc' },
      select: { seq: true },
    });
    if (row) return row.seq - 1;
    return this.lastSeq(conversationId);
  }

  async lastSeq(conversationId: string): Promise<number> {
    const row = await this.db.prisma.conversation.findUnique({ where: { id: conversationId }, select: { lastSeq: true } });
    return row?.lastSeq ?? 0;
  }

  /** Every event of a conversation, oldest first (the agent's history is rebuilt from it). */
  async all(conversationId: string, batch = 1000): Promise<OHEvent[]> {
    const out: OHEvent[] = [];
    for (let after = 0; ; ) {
      const rows = await this.db.prisma.event.findMany({
        where: { conversationId, seq: { gt: after } },
        orderBy: { seq: 'asc' },
        take: batch,
        select: { seq: true, payload: true },
      });
      for (const r of rows) out.push(r.payload as unknown as OHEvent);
      if (rows.length < batch) return out;
      after = rows[rows.length - 1].seq;
    }
  }

  /** Newest events first, for reading the latest agent answer or pending actions. */
  async latest(conversationId: string, limit: number, kinds?: string[]): Promise<OHEvent[]> {
    const rows = await this.db.prisma.event.findMany({
      where: { conversationId, ...(kinds ? { kind: { in: kinds } } : {}) },
      orderBy: { seq: 'desc' },
      take: limit,
      select: { payload: true },
    });
    return rows.map((r) => r.payload as unknown as OHEvent);
  }
}
