import { OHEvent, omitNulls } from './events';
import { newUuid } from './ids';
import { naiveTimestamp } from './time';

/** CondensationRequest: asks the agent to condense its history at its next step (POST …/condense, context window exceeded). */
export function condensationRequestEvent(): OHEvent {
  return { id: newUuid(), timestamp: naiveTimestamp(), source: 'environment', kind: 'CondensationRequest' };
}

/** Condensation as the SDK stores it (exclude_none: no `summary` when the LLM gave none). */
export function condensationEvent(fields: {
  forgottenEventIds: string[];
  summary: string | null;
  summaryOffset: number | null;
  llmResponseId: string;
}): OHEvent {
  return omitNulls({
    id: newUuid(),
    timestamp: naiveTimestamp(),
    source: 'environment' as const,
    forgotten_event_ids: fields.forgottenEventIds,
    summary: fields.summary,
    summary_offset: fields.summaryOffset,
    llm_response_id: fields.llmResponseId,
    kind: 'Condensation',
  });
}
