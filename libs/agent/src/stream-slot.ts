import { naiveTimestamp, newUuid, OHEvent, SessionProgressFrame } from '@berth/contracts';
import type { StreamMask } from './secret-registry';

export type StreamKind = 'text' | 'reasoning';

/** One piece of a streamed completion, as the LLM sent it (before masking). */
export interface StreamChunk {
  kind: StreamKind;
  content: string;
  chunkId: string | null;
  choiceIndex: number | null;
}

/** Where a slot's output goes: progress frames to the session socket, StreamingDeltaEvents to the event socket. */
export interface StreamSinks {
  progress(frame: SessionProgressFrame): void;
  delta(event: OHEvent): void;
}

/**
 * One agent step's stream, as the SDK's StreamContext: its id is minted before the LLM call and
 * becomes the id of the step's first durable event (the reply's MessageEvent or its first
 * ActionEvent), so a session-socket client retires the open slot when that event arrives. The first
 * token opens it (`item_started`, anchored after the last stored event); each masked piece is a
 * `delta` (numbered in order) and a StreamingDeltaEvent; a step that ends without its durable event
 * closes it with `item_aborted`. Secrets split across chunks are held back per kind until they can
 * be masked whole.
 */
export class StreamSlot {
  readonly itemId = newUuid();
  private opened = false;
  private claimed = false;
  private order = 0;
  private lastChunkId: string | null = null;
  private readonly masks = new Map<StreamKind, StreamMask>();

  constructor(
    /** wire seq (counted from 0) of the last stored event when the step began; null when none */
    private readonly anchorSeq: number | null,
    private readonly newMask: () => StreamMask,
    private readonly sinks: StreamSinks,
  ) {}

  feed(chunk: StreamChunk): void {
    if (this.claimed || !chunk.content) return;
    this.lastChunkId = chunk.chunkId;
    if (!this.opened) {
      this.opened = true;
      this.sinks.progress({ type: 'item_started', item_id: this.itemId, attempt: 1, ...(this.anchorSeq === null ? {} : { anchor_seq: this.anchorSeq }) });
    }
    let mask = this.masks.get(chunk.kind);
    if (!mask) this.masks.set(chunk.kind, (mask = this.newMask()));
    this.emit(chunk.kind, mask.feed(chunk.content), chunk.chunkId, chunk.choiceIndex);
  }

  /** The id for the step's first durable event (null for any later one): what was held back goes out first. */
  claim(): string | null {
    if (this.claimed) return null;
    this.flush();
    this.claimed = true;
    return this.itemId;
  }

  /** Ends a slot that opened and produced no durable event (`cancelled`, an error's code, or `no_durable_event`). */
  close(reason: string): void {
    if (!this.opened || this.claimed) return;
    this.flush();
    this.claimed = true;
    this.sinks.progress({ type: 'item_aborted', item_id: this.itemId, attempt: 1, reason });
  }

  private flush(): void {
    for (const [kind, mask] of this.masks) this.emit(kind, mask.flush(), this.lastChunkId, null);
    this.masks.clear();
  }

  private emit(kind: StreamKind, content: string, chunkId: string | null, choiceIndex: number | null): void {
    if (!content) return;
    this.sinks.progress({
      type: 'delta',
      item_id: this.itemId,
      attempt: 1,
      order: this.order++,
      kind,
      content,
      ...(chunkId === null ? {} : { chunk_id: chunkId }),
      ...(choiceIndex === null ? {} : { choice_index: choiceIndex }),
    });
    this.sinks.delta({
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'agent',
      ...(kind === 'text' ? { content } : { reasoning_content: content }),
      kind: 'StreamingDeltaEvent',
    });
  }
}
