import type { OHEvent } from '@berth/contracts';

/**
 * The agent is stuck when it repeats itself without effect: the same action with the same
 * observation four times running, or the same action failing the same way three times (the
 * thresholds OpenHands uses). Only events since the last user message count.
 */
export function isStuck(events: OHEvent[]): boolean {
  let start = 0;
  for (let i = events.length - 1; i >= 0; i--) {
    if (events[i].kind === 'MessageEvent' && events[i].source === 'user') {
      start = i + 1;
      break;
    }
  }
  const steps: { action: string; outcome: string; error: boolean }[] = [];
  const actions = new Map<string, OHEvent>();
  for (const e of events.slice(start)) {
    if (e.kind === 'ActionEvent') actions.set(String(e.tool_call_id), e);
    else if (e.kind === 'ObservationEvent' || e.kind === 'AgentErrorEvent') {
      const action = actions.get(String(e.tool_call_id));
      if (!action) continue;
      const call = action.tool_call as { name: string; arguments: string };
      const outcome = e.kind === 'AgentErrorEvent' ? String(e.error) : JSON.stringify((e.observation as { content?: unknown })?.content);
      steps.push({ action: `${call.name}(${call.arguments})`, outcome, error: e.kind === 'AgentErrorEvent' });
    }
  }
  const repeats = (n: number, errorsOnly: boolean) => {
    if (steps.length < n) return false;
    const tail = steps.slice(-n);
    return tail.every((s) => s.action === tail[0].action && s.outcome === tail[0].outcome && (!errorsOnly || s.error));
  };
  return repeats(4, false) || repeats(3, true);
}
