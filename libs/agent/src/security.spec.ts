import { OHEvent } from '@berth/contracts';
import { AgentTool } from './agent-tools';
import { extractSecurityRisk, requiresConfirmation, securityAnalysisEvent, shouldConfirm } from './security';
import { ContractToolCatalog } from './tool-catalog';

const tools = new Map(new ContractToolCatalog().forAgent({ tools: [{ name: 'terminal' }] }).map((t) => [t.name, t]));
const terminal = tools.get('terminal') as AgentTool;
const finish = tools.get('finish') as AgentTool;
const analyzer = { kind: 'LLMSecurityAnalyzer' };
const parametersOf = (tool: AgentTool) => (tool.definition as unknown as { function: { parameters: { properties: Record<string, { enum?: string[] }>; required?: string[] } } }).function.parameters;
const action = (id: string, tool: AgentTool, risk: string) => ({ event: { id, timestamp: '', source: 'agent', kind: 'ActionEvent', security_risk: risk } as OHEvent, tool });

describe('confirmation by risk (the SDK should_confirm)', () => {
  it('ConfirmRisky confirms at or above its threshold, and UNKNOWN unless confirm_unknown is off', () => {
    const high = { kind: 'ConfirmRisky', threshold: 'HIGH', confirm_unknown: true };
    expect(['LOW', 'MEDIUM', 'HIGH', 'UNKNOWN'].map((r) => shouldConfirm(high, r as never))).toEqual([false, false, true, true]);
    const medium = { kind: 'ConfirmRisky', threshold: 'MEDIUM', confirm_unknown: false };
    expect(['LOW', 'MEDIUM', 'HIGH', 'UNKNOWN'].map((r) => shouldConfirm(medium, r as never))).toEqual([false, true, true, false]);
    const low = { kind: 'ConfirmRisky', threshold: 'LOW' };
    expect(['LOW', 'MEDIUM', 'HIGH', 'UNKNOWN'].map((r) => shouldConfirm(low, r as never))).toEqual([true, true, true, true]);
    // The SDK's defaults: threshold HIGH, confirm_unknown true.
    expect(shouldConfirm({ kind: 'ConfirmRisky' }, 'MEDIUM')).toBe(false);
    expect(shouldConfirm({ kind: 'ConfirmRisky' }, 'UNKNOWN')).toBe(true);
  });

  it('AlwaysConfirm and NeverConfirm ignore the risk', () => {
    for (const risk of ['LOW', 'HIGH', 'UNKNOWN'] as const) {
      expect(shouldConfirm({ kind: 'AlwaysConfirm' }, risk)).toBe(true);
      expect(shouldConfirm({ kind: 'NeverConfirm' }, risk)).toBe(false);
    }
  });

  it('decides a batch: a lone finish never waits; without an analyzer every risk is UNKNOWN', () => {
    const risky = { kind: 'ConfirmRisky', threshold: 'HIGH', confirm_unknown: false };
    expect(requiresConfirmation(risky, analyzer, [action('a', terminal, 'LOW')])).toBe(false);
    expect(requiresConfirmation(risky, analyzer, [action('a', terminal, 'LOW'), action('b', terminal, 'HIGH')])).toBe(true);
    // The LLM said HIGH, but with no analyzer nobody reads it.
    expect(requiresConfirmation(risky, null, [action('a', terminal, 'HIGH')])).toBe(false);
    expect(requiresConfirmation({ kind: 'AlwaysConfirm' }, null, [action('f', finish, 'UNKNOWN')])).toBe(false);
    expect(requiresConfirmation({ kind: 'AlwaysConfirm' }, null, [action('f', finish, 'UNKNOWN'), action('g', finish, 'UNKNOWN')])).toBe(true);
    expect(requiresConfirmation({ kind: 'AlwaysConfirm' }, null, [])).toBe(false);
  });

  it('records a SecurityAnalysisEvent per analyzed batch, only with an analyzer', () => {
    const event = securityAnalysisEvent({ kind: 'NeverConfirm' }, analyzer, [action('a', terminal, 'MEDIUM')]);
    expect(event).toMatchObject({ source: 'environment', analyzer: 'LLMSecurityAnalyzer', policy: 'NeverConfirm', risks: { a: 'MEDIUM' }, details: {}, kind: 'SecurityAnalysisEvent' });
    expect(securityAnalysisEvent({ kind: 'NeverConfirm' }, null, [action('a', terminal, 'MEDIUM')])).toBeNull();
    expect(securityAnalysisEvent({ kind: 'NeverConfirm' }, analyzer, [action('f', finish, 'UNKNOWN')])).toBeNull();
  });
});

describe('security_risk of a tool call (the SDK _extract_security_risk)', () => {
  it('reads the value with an analyzer and takes it out of the arguments', () => {
    expect(extractSecurityRisk({ command: 'ls', security_risk: 'HIGH' }, terminal, analyzer)).toEqual({ args: { command: 'ls' }, risk: 'HIGH' });
    expect(extractSecurityRisk({ command: 'ls' }, terminal, analyzer)).toEqual({ args: { command: 'ls' }, risk: 'UNKNOWN' });
    expect(extractSecurityRisk({ command: 'ls', security_risk: null }, terminal, analyzer)).toEqual({ args: { command: 'ls' }, risk: 'UNKNOWN' });
  });

  it('ignores it without an analyzer and on read-only tools, even when invalid', () => {
    expect(extractSecurityRisk({ command: 'ls', security_risk: 'HIGH' }, terminal, null)).toEqual({ args: { command: 'ls' }, risk: 'UNKNOWN' });
    expect(extractSecurityRisk({ command: 'ls', security_risk: 'nonsense' }, terminal, null)).toEqual({ args: { command: 'ls' }, risk: 'UNKNOWN' });
    expect(extractSecurityRisk({ message: 'done', security_risk: 'HIGH' }, finish, analyzer)).toEqual({ args: { message: 'done' }, risk: 'UNKNOWN' });
  });

  it('refuses a value that is not a SecurityRisk, as the SDK words it (its enum is upper case)', () => {
    expect(extractSecurityRisk({ command: 'ls', security_risk: 'low' }, terminal, analyzer)).toEqual({
      args: { command: 'ls' },
      error: "Error validating tool 'terminal': 'low' is not a valid SecurityRisk. Parameters provided: ['command']",
    });
  });

  it('offers security_risk on every tool but the read-only ones, not required', () => {
    const params = parametersOf(terminal);
    expect(Object.keys(params.properties).slice(0, 2)).toEqual(['security_risk', 'summary']);
    expect(params.properties.security_risk.enum).toEqual(['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH']);
    expect(params.required).not.toContain('security_risk');
    expect(parametersOf(finish).properties.security_risk).toBeUndefined();
  });
});
