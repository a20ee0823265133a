import { Logger } from '@nestjs/common';
import type { BerthConfig, WebhookSpec } from '@berth/config';
import { uuidHex } from '@berth/contracts';
import { ConversationRepository, ConversationRow, Database, EventLog, StoredEvent, tenantScope, toConversationInfo } from '@berth/persistence';
import { JobQueue } from '@berth/queue';
import { postWebhook, retryDelayMs, webhookKey } from './webhook-sender';

export type WebhookJob =
  /** send the conversation's undelivered events, batch after batch */
  | { type: 'events'; webhook: string; conversationId: string }
  /** send one ConversationInfo snapshot; `version` is the change it was taken for, when one is owed */
  | { type: 'conversation'; webhook: string; info: Record<string, unknown>; version?: number };

interface SerializedEvent {
  seq: number;
  json: string;
}

function serialized(stored: StoredEvent[]): SerializedEvent[] {
  return stored.map(({ seq, event }) => ({ seq, json: JSON.stringify(event) }));
}

/** The first events after the cursor that fit `max_batch_bytes` (at least one). */
function fitBatch(spec: WebhookSpec, events: SerializedEvent[]): SerializedEvent[] {
  let bytes = 2;
  let count = 0;
  for (const { json } of events) {
    const size = Buffer.byteLength(json) + 1;
    if (count && bytes + size > spec.maxBatchBytes) break;
    bytes += size;
    count++;
  }
  return events.slice(0, count);
}

/** How soon a delivery job whose process died is run again elsewhere. */
const STALLED_AFTER_MS = 5000;

/** Owed snapshots one sweep queues at most (oldest first): a receiver long away is caught up over several. */
const SWEEP_SNAPSHOTS = 500;

/** Cursors remembered as existing, so an event costs no INSERT; cleared when it grows this big. */
const KNOWN_CURSORS_LIMIT = 50_000;

/**
 * Webhook delivery (contract §8). Events are never copied into the queue: each receiver has a
 * cursor per conversation over the event log, and a job per (receiver, conversation) sends what lies
 * beyond it, in batches of `event_buffer_size`, then moves the cursor. A job waits `flush_delay` for a
 * batch to fill and is promoted at once when one has. A receiver that fails is retried with backoff
 * (Retry-After honoured); a restart, a dead worker or a lost job is made good by the sweep, which
 * re-queues every conversation whose cursor lags its log. ConversationInfo snapshots are jobs of
 * their own, in a queue bounded by the receivers' `max_queue_size`; each change is also counted as
 * owed (webhook_snapshots), so a snapshot job lost with Redis is queued again by the sweep, with the
 * conversation as it is then.
 */
export class WebhookDispatcher {
  private readonly logger = new Logger('Webhooks');
  private readonly specs = new Map<string, WebhookSpec>();
  private readonly knownCursors = new Set<string>();
  private sweepTimer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(
    private readonly db: Database,
    private readonly conversationRows: ConversationRepository,
    private readonly log: EventLog,
    private readonly events: JobQueue<WebhookJob>,
    private readonly conversations: JobQueue<WebhookJob>,
    private readonly config: Pick<BerthConfig, 'webhooks' | 'sessionApiKeys' | 'conversationsPath'>,
  ) {
    for (const spec of config.webhooks) this.specs.set(webhookKey(spec), spec);
  }

  get enabled(): boolean {
    return this.specs.size > 0;
  }

  /** Starts delivering and sweeping in this process (every process delivers; the queue shares the work). */
  async start(): Promise<void> {
    if (!this.enabled) return;
    const backoffMs = (retry: number, err: Error, job: WebhookJob) => this.backoff(retry, err, job);
    // A job a kill -9 left behind holds its conversation's jobId until BullMQ sees it stalled: soon,
    // since resending its claimed batch is safe (same Idempotency-Key) and waiting is not free.
    await this.events.consume((job) => this.deliver(job), { concurrency: 4, backoffMs, stalledAfterMs: STALLED_AFTER_MS });
    // One at a time, so a receiver sees a conversation's snapshots in the order they were taken.
    await this.conversations.consume((job) => this.deliver(job), { concurrency: 1, backoffMs, stalledAfterMs: STALLED_AFTER_MS });
    const flushes = [...this.specs.values()].map((s) => s.flushDelayMs);
    const everyMs = Math.min(30_000, Math.max(1000, Math.min(...flushes)));
    this.sweepTimer = setInterval(() => void this.sweep(), everyMs);
    this.sweepTimer.unref();
    await this.sweep();
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.events.close();
    await this.conversations.close();
  }

  /** The recorder stored events `seqs` of a conversation. */
  async eventsStored(conversationId: string, seqs: number[]): Promise<void> {
    for (const [key, spec] of this.specs) {
      await this.ensureCursor(key, conversationId, Math.min(...seqs) - 1);
      const jobId = `events.${key}.${conversationId}`;
      await this.events.add({ type: 'events', webhook: key, conversationId }, { jobId, delayMs: spec.flushDelayMs, attempts: spec.numRetries + 1 });
      if (seqs.some((seq) => seq % spec.eventBufferSize === 0)) await this.events.promote(jobId);
    }
  }

  /** Start, pause, interrupt, update: every receiver gets the conversation as it now is. */
  async conversationChanged(tenantId: string, conversationId: string): Promise<void> {
    if (!this.enabled) return;
    const row = await this.conversationRows.find(tenantScope(tenantId), conversationId);
    if (row) await this.announce(row);
  }

  /** Delete: the last snapshot, with execution_status "deleting" as OpenHands sends it. */
  async conversationDeleted(row: ConversationRow): Promise<void> {
    await this.announce({ ...row, executionStatus: 'deleting' });
  }

  private async announce(row: ConversationRow): Promise<void> {
    if (!this.enabled) return;
    for (const key of this.specs.keys()) {
      try {
        await this.queueSnapshot(key, row, await this.oweSnapshot(key, row.id));
      } catch (err) {
        // The API call that changed the conversation has succeeded; an outage must not undo that.
        this.logger.error(`could not queue the conversation webhook for ${row.id}: ${(err as Error).message}`);
      }
    }
  }

  /**
   * Counts the change as owed before its snapshot is queued: if the queue is away, the sweep queues
   * it once it is back. The change's version, or undefined for a deleted conversation (no row to owe
   * it on: its last snapshot is only queued) and when the database is away.
   */
  private async oweSnapshot(key: string, conversationId: string): Promise<number | undefined> {
    try {
      const [owed] = await this.db.prisma.$queryRaw<{ version: number }[]>`
        INSERT INTO "webhook_snapshots" ("webhook_key", "conversation_id")
        SELECT ${key}, c."id" FROM "conversations" c WHERE c."id" = ${conversationId}::uuid
        ON CONFLICT ("webhook_key", "conversation_id")
        DO UPDATE SET "version" = "webhook_snapshots"."version" + 1, "changed_at" = now()
        RETURNING "version"`;
      return owed?.version;
    } catch (err) {
      this.logger.warn(`could not record the conversation webhook owed for ${conversationId}: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * Queues one receiver's snapshot of the conversation as it is. A job for an owed change has an id
   * of that change, so the sweep's copy of a job still queued is no second job.
   */
  private async queueSnapshot(key: string, row: ConversationRow, version: number | undefined): Promise<void> {
    const spec = this.specs.get(key) as WebhookSpec;
    // Receivers see skills and no secrets (toConversationInfo never shows secret values).
    const info = toConversationInfo(row, this.config.conversationsPath, true);
    const bound = [...this.specs.values()].reduce((sum, s) => sum + s.maxQueueSize, 0);
    while ((await this.conversations.size()) >= bound) {
      this.logger.warn('conversation webhook queue is full: dropping its oldest update');
      await this.conversations.dropOldest();
    }
    await this.conversations.add(
      { type: 'conversation', webhook: key, info, version },
      { attempts: spec.numRetries + 1, ...(version === undefined ? {} : { jobId: `snapshot.${key}.${row.id}.${version}` }) },
    );
  }

  /**
   * Per receiver (by webhook key), seconds since the oldest event it has not been sent yet was
   * stored; 0 when it has everything. Both times are the database's clock.
   */
  async deliveryLagSeconds(): Promise<Map<string, number>> {
    const rows = await this.db.prisma.$queryRaw<{ webhook_key: string; lag: number }[]>`
      SELECT w."webhook_key", EXTRACT(EPOCH FROM now() - min(e."created_at"))::float8 AS "lag"
        FROM "webhook_cursors" w
        JOIN "conversations" c ON c."id" = w."conversation_id" AND w."delivered_seq" < c."last_seq"
        CROSS JOIN LATERAL (
          SELECT "created_at" FROM "events"
           WHERE "conversation_id" = w."conversation_id" AND "seq" > w."delivered_seq"
           ORDER BY "seq" LIMIT 1) e
       GROUP BY w."webhook_key"`;
    const lag = new Map([...this.specs.keys()].map((key) => [key, 0]));
    for (const row of rows) if (lag.has(row.webhook_key)) lag.set(row.webhook_key, Math.max(0, row.lag));
    return lag;
  }

  /** Re-queues every (receiver, conversation) whose cursor lags the event log, and every snapshot owed. */
  async sweep(): Promise<void> {
    // A sweep waiting on a Redis or PostgreSQL that is away is not joined by the next tick's.
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const lagging = await this.db.prisma.$queryRaw<{ webhook_key: string; conversation_id: string }[]>`
        SELECT w."webhook_key", w."conversation_id"::text AS "conversation_id"
          FROM "webhook_cursors" w JOIN "conversations" c ON c."id" = w."conversation_id"
         WHERE w."delivered_seq" < c."last_seq"`;
      for (const { webhook_key: key, conversation_id: conversationId } of lagging) {
        const spec = this.specs.get(key);
        if (!spec) continue;
        await this.events.add({ type: 'events', webhook: key, conversationId }, { jobId: `events.${key}.${conversationId}`, attempts: spec.numRetries + 1 });
      }
      const owed = await this.db.prisma.$queryRaw<{ webhook_key: string; conversation_id: string; tenant_id: string; version: number }[]>`
        SELECT s."webhook_key", s."conversation_id"::text AS "conversation_id", c."tenant_id"::text AS "tenant_id", s."version"
          FROM "webhook_snapshots" s JOIN "conversations" c ON c."id" = s."conversation_id"
         WHERE s."delivered_version" < s."version"
         ORDER BY s."changed_at" LIMIT ${SWEEP_SNAPSHOTS}`;
      for (const { webhook_key: key, conversation_id: conversationId, tenant_id: tenantId, version } of owed) {
        if (!this.specs.has(key)) continue;
        const row = await this.conversationRows.find(tenantScope(tenantId), conversationId);
        if (row) await this.queueSnapshot(key, row, version);
      }
    } catch (err) {
      this.logger.warn(`webhook sweep failed: ${(err as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }

  private async deliver(job: WebhookJob): Promise<void> {
    const spec = this.specs.get(job.webhook);
    if (!spec) return; // the receiver was removed from the configuration since the job was queued
    if (job.type === 'conversation') {
      await postWebhook(spec, '/conversations', JSON.stringify(job.info), this.config.sessionApiKeys[0]);
      // Owed up to this change no longer (a later change has a job of its own).
      if (job.version !== undefined) {
        await this.db.prisma.$executeRaw`
          UPDATE "webhook_snapshots" SET "delivered_version" = GREATEST("delivered_version", ${job.version})
           WHERE "webhook_key" = ${job.webhook} AND "conversation_id" = ${job.info.id as string}::uuid`;
      }
      return;
    }
    while (await this.sendNextBatch(job.webhook, spec, job.conversationId));
  }

  /**
   * Sends the batch after the cursor and moves it; false when nothing is left to send. The batch is
   * claimed on the cursor (`sending_seq`) before the POST, so whoever sends it again — a retry,
   * another process after a kill -9, this one after an outage — sends exactly those events under
   * the same Idempotency-Key; the cursor moves past them only once a receiver answered 2xx.
   */
  private async sendNextBatch(key: string, spec: WebhookSpec, conversationId: string): Promise<boolean> {
    const [position] = await this.db.prisma.$queryRaw<{ delivered_seq: number; sending_seq: number | null; last_seq: number }[]>`
      SELECT w."delivered_seq", w."sending_seq", c."last_seq"
        FROM "webhook_cursors" w JOIN "conversations" c ON c."id" = w."conversation_id"
       WHERE w."webhook_key" = ${key} AND w."conversation_id" = ${conversationId}::uuid`;
    if (!position) return false;
    const from = position.delivered_seq;
    if (position.last_seq - from > spec.maxQueueSize) {
      // As OpenHands trims its queue: the oldest go, a batch being retried among them.
      const kept = position.last_seq - spec.maxQueueSize;
      this.logger.warn(`webhook ${spec.baseUrl}: dropping ${kept - from} undelivered events of ${conversationId} (max_queue_size)`);
      await this.advance(key, conversationId, from, position.sending_seq, kept);
      return true;
    }
    let batch: SerializedEvent[];
    if (position.sending_seq !== null) {
      batch = serialized(await this.log.range(conversationId, from, position.sending_seq, position.sending_seq - from));
    } else {
      if (position.last_seq <= from) return false;
      batch = fitBatch(spec, serialized(await this.log.range(conversationId, from, position.last_seq, spec.eventBufferSize)));
      if (!batch.length) return false;
      const claimed = await this.db.prisma.$executeRaw`
        UPDATE "webhook_cursors" SET "sending_seq" = ${batch[batch.length - 1].seq}, "updated_at" = now()
         WHERE "webhook_key" = ${key} AND "conversation_id" = ${conversationId}::uuid
           AND "delivered_seq" = ${from} AND "sending_seq" IS NULL`;
      if (claimed === 0) return true; // another deliverer moved first: read the cursor again
    }
    if (!batch.length) return false;
    const upto = batch[batch.length - 1].seq;
    const body = `[${batch.map(({ json }) => json).join(',')}]`;
    const hex = uuidHex(conversationId);
    await postWebhook(spec, `/events/${hex}`, body, this.config.sessionApiKeys[0], `${key}-${hex}-${from + 1}-${upto}`);
    await this.advance(key, conversationId, from, upto, upto);
    return true;
  }

  /**
   * Moves the cursor from `from` to `to` and releases the claimed batch `sending` — compare-and-set,
   * so two deliverers racing on one cursor never move it backwards or past a batch not yet sent.
   */
  private async advance(key: string, conversationId: string, from: number, sending: number | null, to: number): Promise<void> {
    await this.db.prisma.$executeRaw`
      UPDATE "webhook_cursors" SET "delivered_seq" = ${to}, "sending_seq" = NULL, "updated_at" = now()
       WHERE "webhook_key" = ${key} AND "conversation_id" = ${conversationId}::uuid
         AND "delivered_seq" = ${from} AND "sending_seq" IS NOT DISTINCT FROM ${sending}::int`;
  }

  /** A conversation's cursor starts just before the first event this receiver should see. */
  private async ensureCursor(key: string, conversationId: string, deliveredSeq: number): Promise<void> {
    const name = `${key}.${conversationId}`;
    if (this.knownCursors.has(name)) return;
    await this.db.prisma.$executeRaw`
      INSERT INTO "webhook_cursors" ("webhook_key", "conversation_id", "delivered_seq")
      VALUES (${key}, ${conversationId}::uuid, ${deliveredSeq})
      ON CONFLICT DO NOTHING`;
    if (this.knownCursors.size >= KNOWN_CURSORS_LIMIT) this.knownCursors.clear();
    this.knownCursors.add(name);
  }

  private backoff(retry: number, err: Error, job: WebhookJob): number {
    const spec = this.specs.get(job.webhook);
    this.logger.warn(`webhook delivery failed (retry ${retry}): ${err.message}`);
    return spec ? retryDelayMs(spec, retry, err) : 0;
  }
}
