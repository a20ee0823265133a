import { EXECUTOR_TOOL_NAMES, openAITool, parseToolArguments, TOOL_SPECS, toolDefinitionJson, ToolName } from '@berth/contracts';
import { AgentTool, ToolCatalog } from './agent-tools';

const DEFAULT_TOOLS: Record<string, ToolName> = { FinishTool: 'finish', ThinkTool: 'think' };

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
    return names.map((name) => ({
      name,
      definition: openAITool(name) as unknown as AgentTool['definition'],
      spec: toolDefinitionJson(name) as unknown as Record<string, unknown>,
      actionKind: TOOL_SPECS[name].actionKind,
      observationKind: TOOL_SPECS[name].observationKind,
      inSandbox: TOOL_SPECS[name].executor,
      parse: (args: unknown) => {
        const parsed = parseToolArguments(name, args);
        return parsed.ok ? { action: parsed.action as Record<string, unknown> } : { error: parsed.error };
      },
    }));
  }
}
