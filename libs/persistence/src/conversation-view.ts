import { omitNulls, SECRET_MASK, utcTimestamp, uuidHex } from '@berth/contracts';
import { SecretVault, StoredSecret } from '@berth/crypto';
import type { Conversation as ConversationRow } from './generated/prisma/client';

type Json = Record<string, unknown>;

/** Remaining ConversationState fields kept in the `state` column. */
export interface ConversationStateExtras {
  activated_knowledge_skills?: string[];
  activated_path_rules?: unknown[];
  invoked_skills?: string[];
  blocked_actions?: Record<string, string>;
  blocked_messages?: Record<string, string>;
  agent_state?: Json;
  metrics?: Json | null;
}

/** Request options kept in the `options` column. */
export interface ConversationOptions {
  client_tools?: unknown[];
  hook_config?: Json | null;
  parent_conversation_id?: string | null;
  forked_from_conversation_id?: string | null;
  forked_from_event_id?: string | null;
  autotitle?: boolean;
  [key: string]: unknown;
}

function trimSkills(agent: Json, includeSkills: boolean): Json {
  const context = agent.agent_context as Json | null | undefined;
  if (includeSkills || !context || !Array.isArray(context.skills)) return agent;
  return { ...agent, agent_context: { ...context, skills: [] } };
}

export function persistenceDir(conversationsPath: string, id: string): string {
  return `${conversationsPath}/${uuidHex(id)}`;
}

/** ConversationInfo (contract §5.2): nulls kept, secrets null, plus Berth's `sandbox_id`. */
export function toConversationInfo(row: ConversationRow, conversationsPath: string, includeSkills = false): Json {
  const state = row.state as ConversationStateExtras;
  const options = row.options as ConversationOptions;
  return {
    id: row.id,
    workspace: row.workspace,
    persistence_dir: persistenceDir(conversationsPath, row.id),
    max_iterations: row.maxIterations,
    stuck_detection: row.stuckDetection,
    execution_status: row.executionStatus,
    confirmation_policy: row.confirmationPolicy,
    security_analyzer: row.securityAnalyzer ?? null,
    activated_knowledge_skills: state.activated_knowledge_skills ?? [],
    invoked_skills: state.invoked_skills ?? [],
    blocked_actions: state.blocked_actions ?? {},
    blocked_messages: state.blocked_messages ?? {},
    last_user_message_id: row.lastUserMessageId,
    leaf_event_id: row.leafEventId,
    stats: row.stats,
    secret_registry: { secret_sources: SecretVault.redactSecrets(row.secrets as Record<string, StoredSecret>) },
    agent_state: state.agent_state ?? {},
    hook_config: options.hook_config ?? null,
    title: row.title,
    metrics: state.metrics ?? null,
    created_at: utcTimestamp(row.createdAt),
    updated_at: utcTimestamp(row.updatedAt),
    forked_from_conversation_id: options.forked_from_conversation_id ?? null,
    forked_from_event_id: options.forked_from_event_id ?? null,
    parent_conversation_id: options.parent_conversation_id ?? null,
    sub_conversation_ids: [],
    tags: row.tags,
    current_model_id: null,
    available_models: [],
    supports_runtime_model_switch: false,
    launched_agent_profile: options.launched_agent_profile ?? null,
    agent: trimSkills(SecretVault.redactAgent(row.agent as Json), includeSkills),
    client_tools: options.client_tools ?? [],
    sandbox_id: row.sandboxId,
  };
}

/** The `full_state` value (ConversationState with nulls omitted; set secrets shown masked). */
export function toFullState(row: ConversationRow, conversationsPath: string): Json {
  const state = row.state as ConversationStateExtras;
  const options = row.options as ConversationOptions;
  return omitNulls({
    id: row.id,
    agent: SecretVault.redactAgent(row.agent as Json, SECRET_MASK),
    workspace: row.workspace,
    persistence_dir: persistenceDir(conversationsPath, row.id),
    max_iterations: row.maxIterations,
    stuck_detection: row.stuckDetection,
    execution_status: row.executionStatus,
    confirmation_policy: row.confirmationPolicy,
    security_analyzer: row.securityAnalyzer,
    activated_knowledge_skills: state.activated_knowledge_skills ?? [],
    activated_path_rules: state.activated_path_rules ?? [],
    invoked_skills: state.invoked_skills ?? [],
    blocked_actions: state.blocked_actions ?? {},
    blocked_messages: state.blocked_messages ?? {},
    last_user_message_id: row.lastUserMessageId,
    leaf_event_id: row.leafEventId,
    head_is_empty: row.leafEventId === null,
    stats: row.stats,
    secret_registry: { secret_sources: SecretVault.redactSecrets(row.secrets as Record<string, StoredSecret>, SECRET_MASK) },
    tags: row.tags,
    agent_state: state.agent_state ?? {},
    hook_config: options.hook_config ?? null,
  });
}

/** Defaults the OpenHands server fills into an Agent, so responses look like its own. */
export const AGENT_DEFAULTS: Json = {
  mcp_config: {},
  filter_tools_regex: null,
  include_default_tools: ['FinishTool', 'ThinkTool'],
  agent_context: null,
  system_prompt: null,
  system_prompt_filename: 'system_prompt.j2',
  security_policy_filename: 'security_policy.j2',
  system_prompt_kwargs: { llm_security_analyzer: true },
  condenser: null,
  critic: null,
  tool_concurrency_limit: 1,
};

export const LLM_DEFAULTS: Json = {
  api_key: null,
  base_url: null,
  api_version: null,
  num_retries: 5,
  retry_multiplier: 8.0,
  retry_min_wait: 8,
  retry_max_wait: 64,
  timeout: 300,
  max_message_chars: 30000,
  temperature: null,
  top_p: null,
  max_output_tokens: null,
  stream: false,
  drop_params: true,
  native_tool_calling: true,
  usage_id: 'default',
};

/** Agent JSON in OpenHands' key order: llm, tools, the rest, kind last. */
export function withAgentDefaults(agent: Json): Json {
  const { kind, llm, tools, ...rest } = agent;
  return { llm: { ...LLM_DEFAULTS, ...(llm as Json) }, tools, ...AGENT_DEFAULTS, ...rest, kind: kind ?? 'Agent' };
}
