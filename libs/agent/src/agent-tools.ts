import type OpenAI from 'openai';

type Json = Record<string, unknown>;

/** Text content as the agent's events carry it. */
export function llmText(value: string) {
  return [{ cache_prompt: false, type: 'text', text: value }];
}

/** A tool as the agent loop sees it: its LLM definition, its event kinds, and where it runs. */
export interface AgentTool {
  /** the LLM-facing function name (`terminal`, `finish`, …) */
  name: string;
  definition: OpenAI.Chat.Completions.ChatCompletionTool;
  /** ToolDefinition JSON listed by SystemPromptEvent.tools */
  spec: Json;
  actionKind: string;
  observationKind: string;
  /** executed in the conversation's sandbox (false: answered by the worker itself) */
  inSandbox: boolean;
  /** its annotations' readOnlyHint: no `security_risk` is asked for or read (absent: not read-only) */
  readOnly?: boolean;
  /** its observation ends the run (finish) */
  endsRun?: boolean;
  /** Validates the LLM's arguments; returns the action fields (without `kind`) or an error for the agent. */
  parse(args: unknown): { action: Json } | { error: string };
  /** The observation of a tool the worker answers itself (finish, think, a client tool's acknowledgement). */
  answer?(action: Json): Json;
  /** The observation of a tool that runs itself (an MCP server's, through the sandbox's executor). */
  execute?(action: Json, signal: AbortSignal): Promise<Json>;
}

/** The agent's tools: the ones its spec names that Berth has, plus finish and think. */
export abstract class ToolCatalog {
  abstract forAgent(agent: { tools?: { name: string }[]; include_default_tools?: string[] }): AgentTool[];
}
