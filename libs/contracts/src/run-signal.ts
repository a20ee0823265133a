import { z } from 'zod';
import type { OHEvent } from './events';

/**
 * What a gateway tells the worker running a conversation: an interrupt (abort the step in flight),
 * or an event it stored that the agent must read (a user message, a condensation request). The
 * loop keeps its history in memory, so these reach it here instead of through a re-read log.
 */
export const RunSignalSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('interrupt') }),
  z.strictObject({
    type: z.literal('event'),
    event: z.looseObject({ id: z.string(), timestamp: z.string(), source: z.enum(['agent', 'user', 'environment', 'hook']), kind: z.string() }),
  }),
]);
export type RunSignal = { type: 'interrupt' } | { type: 'event'; event: OHEvent };

/** The signal in a bus message, or null for anything else (a malformed or foreign message is ignored). */
export function parseRunSignal(json: string): RunSignal | null {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return null;
  }
  const parsed = RunSignalSchema.safeParse(raw);
  return parsed.success ? (parsed.data as RunSignal) : null;
}
