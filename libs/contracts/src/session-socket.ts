import { z } from 'zod';
import type { OHEvent } from './events';

/**
 * The query of `WS /sockets/session/{conversation_id}` that Berth reads (auth parameters aside):
 * `after_seq`, the resume cursor — every event with a higher seq is sent before going live; -1 sends
 * the whole history, no cursor only what happens from now on. As pydantic reads an int: an integer
 * (sign, surrounding blanks and a zero fraction allowed), of any size.
 */
export const SessionSocketQuerySchema = z.object({
  after_seq: z
    .string()
    .regex(/^\s*[+-]?\d+(?:\.0*)?\s*$/, 'after_seq must be an integer')
    .transform((raw) => BigInt(raw.trim().replace(/\.0*$/, '')))
    .optional(),
});

/** Sent once, before any replay: the range about to be replayed (`from_seq` echoes `after_seq`). */
export interface SessionSyncFrame {
  type: 'sync';
  from_seq?: number;
  /** the highest seq stored when the socket was set up; everything above it arrives live */
  through_seq?: number;
}

/** A stored event; `seq` is its index in the conversation's log (from 0), the resume cursor. */
export interface SessionDurableFrame {
  type: 'durable';
  seq: number;
  event: OHEvent;
}

/** An event that is never stored (a state snapshot): shown, never a cursor. */
export interface SessionTransientFrame {
  type: 'transient';
  event: OHEvent;
}

/** A problem with a client frame on this socket, never stored. */
export interface SessionErrorFrame {
  type: 'error';
  code: string;
  detail: string;
}

/** A stream opens (before its first token); `item_id` is the id its durable event will have. */
export interface SessionItemStartedFrame {
  type: 'item_started';
  item_id: string;
  attempt: number;
  /** the seq the slot sits after (absent when the log was empty) */
  anchor_seq?: number;
}

/** One masked piece of a stream, `order` counting up within the item. */
export interface SessionDeltaFrame {
  type: 'delta';
  item_id: string;
  attempt: number;
  order: number;
  kind: 'text' | 'reasoning';
  content: string;
  chunk_id?: string;
  choice_index?: number;
}

/** A stream that ended without its durable event. */
export interface SessionItemAbortedFrame {
  type: 'item_aborted';
  item_id: string;
  attempt: number;
  reason: string;
}

/** Token progress of a streaming LLM call (OpenHands' session protocol): live only, never replayed. */
export type SessionProgressFrame = SessionItemStartedFrame | SessionDeltaFrame | SessionItemAbortedFrame;

export type SessionFrame = SessionSyncFrame | SessionDurableFrame | SessionTransientFrame | SessionErrorFrame | SessionProgressFrame;

/**
 * Progress frames travel the conversation's bus channel beside events, as their wire JSON: an event
 * never has a top-level `type` (its discriminator is `kind`), so the sockets tell them apart by the
 * first key, without parsing.
 */
export function isProgressFrameJson(json: string): boolean {
  return json.startsWith('{"type":"');
}
