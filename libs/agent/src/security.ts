import { naiveTimestamp, newUuid, OHEvent, SECURITY_RISKS, SecurityRisk } from '@berth/contracts';
import type { AgentTool } from './agent-tools';

type Json = Record<string, unknown>;

/**
 * The security analyzer and confirmation policy of openhands-sdk 1.58.2 (`openhands/sdk/security`):
 * `LLMSecurityAnalyzer` takes the risk the LLM gives in each call's `security_risk` argument (the
 * agent offers it on every tool but the read-only ones), and the policy decides by that risk
 * whether the batch waits for the user.
 */

const RISK_ORDER: Record<Exclude<SecurityRisk, 'UNKNOWN'>, number> = { LOW: 1, MEDIUM: 2, HIGH: 3 };

export type ConfirmationPolicy =
  | { kind: 'NeverConfirm' }
  | { kind: 'AlwaysConfirm' }
  | { kind: 'ConfirmRisky'; threshold?: Exclude<SecurityRisk, 'UNKNOWN'>; confirm_unknown?: boolean };

/** `ConfirmationPolicyBase.should_confirm`: ConfirmRisky confirms a risk at or above its threshold, and UNKNOWN unless told not to. */
export function shouldConfirm(policy: ConfirmationPolicy | Json, risk: SecurityRisk): boolean {
  if (policy.kind === 'AlwaysConfirm') return true;
  if (policy.kind !== 'ConfirmRisky') return false;
  if (risk === 'UNKNOWN') return policy.confirm_unknown !== false;
  const threshold = (policy.threshold as keyof typeof RISK_ORDER | undefined) ?? 'HIGH';
  return RISK_ORDER[risk] >= RISK_ORDER[threshold];
}

/** One ActionEvent about to run, with the tool it calls. */
export interface PendingAction {
  event: OHEvent;
  tool: AgentTool;
}

/**
 * Whether a batch of actions waits for confirmation (`Agent._analyze_for_confirmation` and
 * `_set_confirmation_status`): a lone `finish` or `think` never does; without an analyzer every
 * risk is UNKNOWN; otherwise each action's recorded risk is asked of the policy.
 */
export function requiresConfirmation(policy: Json, analyzer: Json | null, actions: PendingAction[]): boolean {
  if (!actions.length || isLoneBuiltin(actions)) return false;
  const risks = actions.map((a) => (analyzer ? ((a.event.security_risk as SecurityRisk) ?? 'UNKNOWN') : 'UNKNOWN'));
  return risks.some((risk) => shouldConfirm(policy, risk));
}

function isLoneBuiltin(actions: PendingAction[]): boolean {
  return actions.length === 1 && (actions[0].tool.name === 'finish' || actions[0].tool.name === 'think');
}

/**
 * The SecurityAnalysisEvent the SDK records before each batch when an analyzer is set, whatever
 * the policy then decides (null: no analyzer, or a lone finish/think, which is not analyzed).
 */
export function securityAnalysisEvent(policy: Json, analyzer: Json | null, actions: PendingAction[]): OHEvent | null {
  if (!analyzer || !actions.length || isLoneBuiltin(actions)) return null;
  return {
    id: newUuid(),
    timestamp: naiveTimestamp(),
    source: 'environment',
    analyzer: String(analyzer.kind),
    policy: String(policy.kind),
    risks: Object.fromEntries(actions.map((a) => [a.event.id, a.event.security_risk ?? 'UNKNOWN'])),
    details: {},
    kind: 'SecurityAnalysisEvent',
  };
}

/** Python's repr of what the LLM sent, as the SDK's ValueError quotes it. */
function pyRepr(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
}

/**
 * `Agent._extract_security_risk`: takes `security_risk` out of the call's arguments (always) and
 * reads it only with an analyzer set and on a tool that is not read-only; missing is UNKNOWN, a
 * value that is not a SecurityRisk makes the call invalid (the SDK's message).
 */
export function extractSecurityRisk(
  args: unknown,
  tool: Pick<AgentTool, 'name' | 'readOnly'>,
  analyzer: Json | null,
): { args: unknown; risk: SecurityRisk } | { args: unknown; error: string } {
  if (!args || typeof args !== 'object' || Array.isArray(args) || !('security_risk' in args)) return { args, risk: 'UNKNOWN' };
  const { security_risk: raw, ...rest } = args as Json;
  if (tool.readOnly || !analyzer || raw === null || raw === undefined) return { args: rest, risk: 'UNKNOWN' };
  if (typeof raw === 'string' && (SECURITY_RISKS as readonly string[]).includes(raw)) return { args: rest, risk: raw as SecurityRisk };
  return {
    args: rest,
    error: `Error validating tool '${tool.name}': ${pyRepr(raw)} is not a valid SecurityRisk. Parameters provided: [${Object.keys(rest).map((k) => `'${k}'`).join(', ')}]`,
  };
}
