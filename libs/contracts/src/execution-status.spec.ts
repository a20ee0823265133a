import { canTransition, EXECUTION_STATUSES, STATUS_TRANSITIONS, transitionsBy, unmatchedActions } from './execution-status';
import type { OHEvent } from './events';

const event = (fields: Record<string, unknown>): OHEvent => ({ timestamp: '2026-12-06T00:00:00', source: 'agent', kind: 'X', id: 'x', ...fields });

describe('execution-status state machine', () => {
  it('leads every state a conversation can be in out again, except deleting', () => {
    for (const status of EXECUTION_STATUSES.filter((s) => s !== 'deleting')) {
      expect(EXECUTION_STATUSES.some((to) => to !== status && canTransition(status, to))).toBe(true);
    }
    expect(EXECUTION_STATUSES.some((to) => canTransition('deleting', to))).toBe(false);
  });

  it('lets only the client start, pause and reject, and only the run finish, fail or wait for confirmation', () => {
    expect(transitionsBy('client').sort()).toEqual(['interrupt', 'pause', 'reject', 'reopen', 'start']);
    expect(transitionsBy('run').sort()).toEqual(['await_confirmation', 'fail', 'finish', 'resume', 'stuck']);
  });

  it('has the edges OpenHands has and not others', () => {
    expect(canTransition('running', 'finished')).toBe(true);
    expect(canTransition('paused', 'running')).toBe(true);
    expect(canTransition('idle', 'paused')).toBe(true);
    // A finished conversation is not paused (OpenHands pauses only idle and running ones), nor does it end again.
    expect(canTransition('finished', 'paused')).toBe(false);
    expect(canTransition('finished', 'error')).toBe(false);
    expect(canTransition('error', 'finished')).toBe(false);
    expect(canTransition('waiting_for_confirmation', 'finished')).toBe(false);
    expect(STATUS_TRANSITIONS.start.from).not.toContain('running');
  });
});

describe('unmatchedActions', () => {
  const action = (id: string, call: string, executable = true): OHEvent => event({ id, kind: 'ActionEvent', tool_call_id: call, ...(executable ? { action: { kind: 'X' } } : {}) });

  it('matches observations and rejections by action id, agent errors by tool call id, oldest first', () => {
    const newestFirst: OHEvent[] = [
      action('a5', 'c5'),
      event({ id: 'e4', kind: 'AgentErrorEvent', tool_call_id: 'c4' }),
      action('a4', 'c4'),
      event({ id: 'r3', kind: 'UserRejectObservation', action_id: 'a3', tool_call_id: 'other' }),
      action('a3', 'c3'),
      event({ id: 'o2', kind: 'ObservationEvent', action_id: 'a2', tool_call_id: 'c2' }),
      action('a2', 'c2'),
      action('a1', 'c1'),
      action('a0', 'c0', false),
    ];
    expect(unmatchedActions(newestFirst).map((e) => e.id)).toEqual(['a1', 'a5']);
  });

  it('does not take an observation with the same tool call id but another action id as an answer', () => {
    expect(unmatchedActions([event({ id: 'o', kind: 'ObservationEvent', action_id: 'elsewhere', tool_call_id: 'c' }), action('a', 'c')]).map((e) => e.id)).toEqual(['a']);
  });
});
