import type { LlmCallUsage } from '@berth/persistence';
import type { LlmConfig, LlmReply } from './llm';

type Json = Record<string, any>;

/** The LLMs of an agent, as the SDK's `get_all_llms()` finds them: its own, then its condenser's. */
export function agentLlms(agent: Json): LlmConfig[] {
  return [agent.llm, agent.condenser?.llm].filter((llm): llm is LlmConfig => Boolean(llm?.model));
}

/**
 * A new conversation's stats: its agent's LLMs listed with zero metrics, as OpenHands registers
 * them when the agent is ready (the first of a usage_id wins).
 */
export function initialStats(llms: LlmConfig[]): Json {
  const usage: Json = {};
  for (const llm of llms) usage[llm.usage_id ?? 'default'] ??= zeroMetrics(llm);
  return { usage_to_metrics: usage };
}

function zeroMetrics(llm: LlmConfig): Json {
  return {
    model_name: llm.model,
    accumulated_cost: 0,
    max_budget_per_task: null,
    accumulated_token_usage: tokenUsage(llm.model, { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, reasoning_tokens: 0 }, ''),
    costs: [],
    response_latencies: [],
    token_usages: [],
  };
}

/**
 * One LLM call as OpenHands' Metrics count it (its cost, latency and token usage entries), for
 * ConversationRepository.addUsage, which accumulates it per usage id in the database.
 */
export function llmCallUsage(llm: LlmConfig, reply: LlmReply): LlmCallUsage {
  const cost = reply.usage.prompt_tokens * (llm.input_cost_per_token ?? 0) + reply.usage.completion_tokens * (llm.output_cost_per_token ?? 0);
  return {
    usageId: llm.usage_id ?? 'default',
    zero: zeroMetrics(llm),
    cost,
    cost_entry: { model: llm.model, cost, timestamp: Date.now() / 1000 },
    latency_entry: { model: llm.model, latency: reply.latencySeconds, response_id: reply.responseId },
    turn: tokenUsage(llm.model, reply.usage, reply.responseId),
  };
}

function tokenUsage(model: string, usage: LlmReply['usage'], responseId: string) {
  return {
    model,
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    cache_read_tokens: usage.cached_tokens,
    cache_write_tokens: 0,
    reasoning_tokens: usage.reasoning_tokens,
    context_window: 0,
    per_turn_token: usage.prompt_tokens + usage.completion_tokens,
    response_id: responseId,
  };
}
