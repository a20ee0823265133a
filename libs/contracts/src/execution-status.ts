import type { OHEvent } from './events';

export const EXECUTION_STATUSES = [
  'idle',
  'running',
  'paused',
  'waiting_for_confirmation',
  'finished',
  'error',
  'stuck',
  'deleting',
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/** Who may cause a status change: the client through the API, or the run (a worker's agent loop). */
export type StatusActor = 'client' | 'run';

interface StatusTransition {
  by: StatusActor;
  from: readonly ExecutionStatus[];
  to: ExecutionStatus;
}

/**
 * The execution-status state machine of a conversation: every status change names one of these
 * transitions, and takes effect only from the states it lists (an atomic compare-and-set on the row),
 * so concurrent gateways and workers cannot race a conversation into a state no transition leads to.
 * The states are OpenHands' (ConversationExecutionStatus); the transitions are what its
 * LocalConversation and agent server do, spread over gateway and workers.
 */
export const STATUS_TRANSITIONS = {
  /** POST …/run, a message with run, confirmation accepted: a worker is queued for the run. */
  start: { by: 'client', from: ['idle', 'paused', 'waiting_for_confirmation', 'finished', 'error', 'stuck'], to: 'running' },
  /** POST …/pause: takes effect between steps. */
  pause: { by: 'client', from: ['idle', 'running'], to: 'paused' },
  /** POST …/interrupt: aborts the step in flight. */
  interrupt: { by: 'client', from: ['running'], to: 'paused' },
  /** A new user message reopens a conversation that had ended its task. */
  reopen: { by: 'client', from: ['finished', 'stuck'], to: 'idle' },
  /** Every pending action rejected. */
  reject: { by: 'client', from: ['waiting_for_confirmation'], to: 'idle' },
  /** The agent finished its task (a `finish` call or a plain answer). */
  finish: { by: 'run', from: ['running'], to: 'finished' },
  /** A user message arrived during the last step: the run goes on instead of ending. */
  resume: { by: 'run', from: ['finished', 'idle'], to: 'running' },
  /** The confirmation policy holds the step's actions for the user. */
  await_confirmation: { by: 'run', from: ['running'], to: 'waiting_for_confirmation' },
  /** The stuck detector saw the agent repeat itself. */
  stuck: { by: 'run', from: ['running'], to: 'stuck' },
  /** An LLM or loop error ended the run (a ConversationErrorEvent says why). */
  fail: { by: 'run', from: ['running'], to: 'error' },
} as const satisfies Record<string, StatusTransition>;

export type StatusTransitionName = keyof typeof STATUS_TRANSITIONS;
/** The transitions `actor` may cause: the gateway's status changes take client ones, a run's loop run ones. */
export type TransitionBy<A extends StatusActor> = { [K in StatusTransitionName]: (typeof STATUS_TRANSITIONS)[K]['by'] extends A ? K : never }[StatusTransitionName];

/** The status a conversation is created in: running when it starts with a message, idle otherwise. */
export function initialStatus(startsWithMessage: boolean): ExecutionStatus {
  return startsWithMessage ? 'running' : 'idle';
}

/** Whether a status may follow another through some transition (the machine's edges). */
export function canTransition(from: ExecutionStatus, to: ExecutionStatus): boolean {
  return Object.values(STATUS_TRANSITIONS).some((t) => t.to === to && (t.from as readonly ExecutionStatus[]).includes(from));
}

/** The transitions an actor may cause (the gateway causes client ones, workers run ones). */
export function transitionsBy(actor: StatusActor): StatusTransitionName[] {
  return (Object.keys(STATUS_TRANSITIONS) as StatusTransitionName[]).filter((name) => STATUS_TRANSITIONS[name].by === actor);
}

const ANSWERS_BY_ACTION_ID = new Set(['ObservationEvent', 'UserRejectObservation']);

/** The event kinds that answer an ActionEvent. */
export const ACTION_ANSWER_KINDS = ['ObservationEvent', 'UserRejectObservation', 'AgentErrorEvent'] as const;

/**
 * Actions no observation, rejection or agent error has answered, oldest first: the ones a
 * confirmation pause holds, or that a crash cut short. OpenHands' `get_unmatched_actions`:
 * observations and rejections match by action id, an AgentErrorEvent (which has none) by tool call
 * id, and only executable actions (with an `action`) count. `newestFirst`: ActionEvents and their
 * answers, most recent first (as EventLog.latest reads them).
 */
export function unmatchedActions(newestFirst: readonly OHEvent[]): OHEvent[] {
  const answeredActions = new Set<unknown>();
  const answeredCalls = new Set<unknown>();
  const pending: OHEvent[] = [];
  for (const event of newestFirst) {
    if (ANSWERS_BY_ACTION_ID.has(event.kind)) answeredActions.add(event.action_id);
    else if (event.kind === 'AgentErrorEvent') answeredCalls.add(event.tool_call_id);
    else if (event.kind === 'ActionEvent' && event.action && !answeredActions.has(event.id) && !answeredCalls.has(event.tool_call_id)) pending.push(event);
  }
  return pending.reverse();
}
