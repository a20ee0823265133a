import type { OHEvent } from '@berth/contracts';

/** Kinds the LLM reads (the SDK's LLMConvertibleEvent subclasses Berth writes). */
const LLM_CONVERTIBLE = new Set(['SystemPromptEvent', 'MessageEvent', 'ActionEvent', 'ObservationEvent', 'UserRejectObservation', 'AgentErrorEvent', 'CondensationSummaryEvent']);
/** The SDK's ObservationBaseEvent subclasses: each answers one tool call. */
const OBSERVATION_KINDS = new Set(['ObservationEvent', 'UserRejectObservation', 'AgentErrorEvent']);

/** The summary a Condensation carries, as the SDK places it in the view (`Condensation.summary_event`). */
export function summaryEvent(condensation: OHEvent): OHEvent {
  return { id: `${condensation.id}-summary`, timestamp: condensation.timestamp, source: 'environment', summary: condensation.summary, kind: 'CondensationSummaryEvent' };
}

/**
 * The events the LLM sees, as the SDK's View keeps them: appended one at a time, a Condensation
 * dropping the events it forgets and placing its summary at its offset, a CondensationRequest
 * marked until a Condensation handles it.
 */
export class View {
  events: OHEvent[] = [];
  unhandledCondensationRequest = false;

  static fromEvents(events: Iterable<OHEvent>): View {
    const view = new View();
    for (const event of events) view.append(event);
    return view;
  }

  get length(): number {
    return this.events.length;
  }

  /** Appends an event; true when the view's earlier events changed (a Condensation applied). */
  append(event: OHEvent): boolean {
    if (event.kind === 'Condensation') {
      this.apply(event);
      this.unhandledCondensationRequest = false;
      return true;
    }
    if (event.kind === 'CondensationRequest') this.unhandledCondensationRequest = true;
    else if (LLM_CONVERTIBLE.has(event.kind)) this.events.push(event);
    return false;
  }

  /** Condensation.apply: forgotten events out, then the summary (when it has one and an offset) in. */
  private apply(condensation: OHEvent): void {
    const forgotten = new Set(condensation.forgotten_event_ids as string[]);
    const kept = this.events.filter((e) => !forgotten.has(e.id));
    if (typeof condensation.summary === 'string' && typeof condensation.summary_offset === 'number') {
      kept.splice(condensation.summary_offset, 0, summaryEvent(condensation));
    }
    this.events = kept;
  }

  /**
   * Where the view can be cut without breaking what LLM APIs expect (the SDK's manipulation
   * indices): not inside one response's batch of actions, not between an action and its
   * observation, not inside a tool loop opened by an action with thinking blocks.
   */
  manipulationIndices(): Set<number> {
    const events = this.events;
    const indices = new Set<number>();
    for (let i = 0; i <= events.length; i++) indices.add(i);
    const pending = new Set<unknown>();
    let inToolLoop = false;
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      const next = events[i + 1];
      if (e.kind === 'ActionEvent' && next?.kind === 'ActionEvent' && e.llm_response_id === next.llm_response_id) indices.delete(i + 1);
      if (e.kind === 'ActionEvent') pending.add(e.tool_call_id);
      else if (OBSERVATION_KINDS.has(e.kind)) pending.delete(e.tool_call_id);
      if (pending.size) indices.delete(i + 1);
      if (e.kind === 'ActionEvent' && Array.isArray(e.thinking_blocks) && e.thinking_blocks.length) inToolLoop = true;
      else if (e.kind === 'ActionEvent' || OBSERVATION_KINDS.has(e.kind)) {
        if (inToolLoop) indices.delete(i);
      } else inToolLoop = false;
    }
    return indices;
  }
}

/** ManipulationIndices.find_next: the smallest index ≥ threshold, or null when there is none. */
export function nextIndex(indices: Set<number>, threshold: number): number | null {
  let best: number | null = null;
  for (const i of indices) if (i >= threshold && (best === null || i < best)) best = i;
  return best;
}
