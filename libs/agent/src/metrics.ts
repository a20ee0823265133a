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

/** Token usage and cost, accumulated per LLM usage id in OpenHands' Metrics shape. */
export function addUsage(stats: Json, llm: LlmConfig, reply: LlmReply): Json {
  const usageId = llm.usage_id ?? 'default';
  const all = { ...(stats.usage_to_metrics ?? {}) };
  const m: Json = all[usageId] ?? zeroMetrics(llm);
  const cost = reply.usage.prompt_tokens * (llm.input_cost_per_token ?? 0) + reply.usage.completion_tokens * (llm.output_cost_per_token ?? 0);
  const turn = tokenUsage(llm.model, reply.usage, reply.responseId);
  const acc = m.accumulated_token_usage;
  all[usageId] = {
    ...m,
    accumulated_cost: m.accumulated_cost + cost,
    accumulated_token_usage: {
      ...acc,
      prompt_tokens: acc.prompt_tokens + turn.prompt_tokens,
      completion_tokens: acc.completion_tokens + turn.completion_tokens,
      cache_read_tokens: acc.cache_read_tokens + turn.cache_read_tokens,
      reasoning_tokens: acc.reasoning_tokens + turn.reasoning_tokens,
      per_turn_token: turn.per_turn_token,
      response_id: reply.responseId,
    },
    costs: [...m.costs, { model: llm.model, cost, timestamp: Date.now() / 1000 }],
    response_latencies: [...m.response_latencies, { model: llm.model, latency: reply.latencySeconds, response_id: reply.responseId }],
    token_usages: [...m.token_usages, turn],
  };
  return { ...stats, usage_to_metrics: all };
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

/** The compact form state-update events carry: no per-call lists. */
export function statsSnapshot(stats: Json): Json {
  const out: Json = {};
  for (const [id, m] of Object.entries<Json>(stats.usage_to_metrics ?? {})) {
    const { costs: _c, response_latencies: _r, token_usages: _t, ...rest } = m;
    out[id] = rest;
  }
  return { usage_to_metrics: out };
}
