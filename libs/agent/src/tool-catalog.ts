import { EXECUTOR_TOOL_NAMES, openAITool, parseToolArguments, TOOL_SPECS, toolDefinitionJson, ToolName } from '@berth/contracts';
import { AgentTool, llmText, ToolCatalog } from './agent-tools';

const DEFAULT_TOOLS: Record<string, ToolName> = { FinishTool: 'finish', ThinkTool: 'think' };

/** The observations of the built-ins, which the worker answers itself. */
const BUILTIN_ANSWERS: Partial<Record<ToolName, (action: Record<string, unknown>) => string>> = {
  finish: (action) => String(action.message ?? ''),
  think: () => 'Your thought has been logged.',
};

/**
 * The tools of libs/contracts, as an agent's spec selects them: the sandbox tools it names
 * (`terminal`, `file_editor`, `task_tracker`) and the built-ins of `include_default_tools`.
 * Tools Berth does not have are left out (the LLM is never offered what cannot run).
 */
export class ContractToolCatalog extends ToolCatalog {
  forAgent(agent: { tools?: { name: string }[]; include_default_tools?: string[] }): AgentTool[] {
    const requested = new Set((agent.tools ?? []).map((t) => t.name));
    const names: ToolName[] = EXECUTOR_TOOL_NAMES.filter((name) => requested.has(name));
    for (const builtin of agent.include_default_tools ?? Object.keys(DEFAULT_TOOLS)) {
      if (DEFAULT_TOOLS[builtin]) names.push(DEFAULT_TOOLS[builtin]);
    }
    return names.map((name) => {
      const spec = TOOL_SPECS[name];
      const answer = BUILTIN_ANSWERS[name];
      return {
        name,
        // The SDK's agent asks every tool call for its risk (read-only tools excepted), analyzer or not.
        definition: openAITool(name, { securityRisk: true }) as unknown as AgentTool['definition'],
        spec: toolDefinitionJson(name) as unknown as Record<string, unknown>,
        actionKind: spec.actionKind,
        observationKind: spec.observationKind,
        inSandbox: spec.executor,
        readOnly: spec.annotations.readOnlyHint,
        ...(name === 'finish' ? { endsRun: true } : {}),
        parse: (args: unknown) => {
          const parsed = parseToolArguments(name, args);
          return parsed.ok ? { action: parsed.action as Record<string, unknown> } : { error: parsed.error };
        },
        ...(answer ? { answer: (action: Record<string, unknown>) => ({ content: llmText(answer(action)), is_error: false, kind: spec.observationKind }) } : {}),
      };
    });
  }
}

interface ClientToolSpec {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
  annotations?: { readOnlyHint?: boolean } | null;
}

/**
 * The conversation's `client_tools`: tools the client (Agent Canvas) carries out itself. The LLM is
 * offered them; a call becomes an ActionEvent (`ClientAction_<name>`) that the client sees on its
 * socket, and the agent gets an acknowledgement at once, as OpenHands does.
 */
export function clientTools(specs: ClientToolSpec[] | undefined): AgentTool[] {
  return (specs ?? []).map((spec) => {
    const parameters = spec.parameters ?? { type: 'object', properties: {} };
    return {
      name: spec.name,
      definition: { type: 'function', function: { name: spec.name, description: spec.description ?? '', parameters } },
      spec: { name: spec.name, description: spec.description ?? '', parameters, kind: 'ClientTool' },
      actionKind: `ClientAction_${spec.name}`,
      observationKind: 'ClientObservation',
      inSandbox: false,
      readOnly: spec.annotations?.readOnlyHint === true,
      parse: (args: unknown) =>
        args !== null && typeof args === 'object' && !Array.isArray(args) ? { action: args as Record<string, unknown> } : { error: 'Arguments must be a JSON object' },
      answer: () => ({
        content: [{ type: 'text', text: `The client received the ${spec.name} call and carries it out.` }],
        is_error: false,
        kind: 'ClientObservation',
      }),
    };
  });
}
