import { OHEvent } from '@berth/contracts';
import OpenAI from 'openai';
import { buildMessages } from './history';
import { classifyLlmError, wireModelName } from './llm';
import { llmCallUsage } from './metrics';
import { isStuck } from './stuck-detector';

let n = 0;
const base = (kind: string, source: OHEvent['source'], extra: Record<string, unknown>): OHEvent => ({
  id: `e${++n}`,
  timestamp: `2026-11-25T10:00:00.${String(n).padStart(6, '0')}`,
  source,
  ...extra,
  kind,
});
const user = (text: string) => base('MessageEvent', 'user', { llm_message: { role: 'user', content: [{ type: 'text', text }] } });
const action = (callId: string, command: string, responseId = `r-${callId}`) =>
  base('ActionEvent', 'agent', {
    thought: [],
    tool_name: 'terminal',
    tool_call_id: callId,
    tool_call: { id: callId, name: 'terminal', arguments: JSON.stringify({ command }) },
    llm_response_id: responseId,
  });
const observation = (callId: string, text: string, isError = false) =>
  base('ObservationEvent', 'environment', {
    tool_name: 'terminal',
    tool_call_id: callId,
    action_id: 'x',
    observation: { content: [{ type: 'text', text }], is_error: isError, kind: 'FileEditorObservation' },
  });
const agentError = (callId: string, error: string) => base('AgentErrorEvent', 'agent', { tool_name: 'terminal', tool_call_id: callId, error });

describe('buildMessages', () => {
  it('puts the system prompt first and groups the actions of one response into one assistant message', () => {
    const events = [
      user('hi'),
      base('SystemPromptEvent', 'agent', { system_prompt: { type: 'text', text: 'SYSTEM' }, tools: [] }),
      action('c1', 'ls', 'resp'),
      action('c2', 'pwd', 'resp'),
      observation('c1', 'a b'),
      agentError('c2', 'boom'),
      base('MessageEvent', 'agent', { llm_message: { role: 'assistant', content: [{ type: 'text', text: 'done' }] } }),
    ];
    const messages = buildMessages(events);
    expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'tool', 'assistant']);
    expect((messages[2] as { tool_calls: unknown[] }).tool_calls).toHaveLength(2);
    expect(messages[3]).toEqual({ role: 'tool', tool_call_id: 'c1', content: 'a b' });
    expect(messages[4]).toEqual({ role: 'tool', tool_call_id: 'c2', content: '[An error occurred during execution.]\nboom' });
  });

  it('answers a call that has no observation, so the API accepts the history', () => {
    const messages = buildMessages([user('hi'), action('c1', 'sleep 100'), user('still there?')]);
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'user']);
    expect((messages[2] as { content: string }).content).toMatch(/No observation/);
  });

  it('sends images as image_url parts', () => {
    const messages = buildMessages([
      base('MessageEvent', 'user', {
        llm_message: { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', image_urls: ['data:image/png;base64,AA'] }] },
      }),
    ]);
    expect(messages[0].content).toEqual([
      { type: 'text', text: 'look' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } },
    ]);
  });
});

describe('isStuck', () => {
  const repeat = (times: number, make: (i: number) => OHEvent[]) => Array.from({ length: times }, (_, i) => make(i)).flat();
  it('is stuck after four identical action/observation pairs, not after three', () => {
    const three = [user('go'), ...repeat(3, (i) => { const id = `p${i}`; return [action(id, 'ls'), observation(id, 'same')]; })];
    expect(isStuck(three)).toBe(false);
    const four = [user('go'), ...repeat(4, (i) => { const id = `q${i}`; return [action(id, 'ls'), observation(id, 'same')]; })];
    expect(isStuck(four)).toBe(true);
  });
  it('is stuck after three identical errors, and forgets everything before the last user message', () => {
    const errors = repeat(3, (i) => { const id = `e${i}x`; return [action(id, 'bad'), agentError(id, 'nope')]; });
    expect(isStuck([user('go'), ...errors])).toBe(true);
    expect(isStuck([user('go'), ...errors, user('try again')])).toBe(false);
  });
  it('is not stuck when the observations differ', () => {
    const varied = repeat(5, (i) => { const id = `v${i}`; return [action(id, 'date'), observation(id, `t${i}`)]; });
    expect(isStuck([user('go'), ...varied])).toBe(false);
  });
});

describe('LLM helpers', () => {
  it('drops the LiteLLM provider prefix when a base_url is set', () => {
    expect(wireModelName({ model: 'litellm_proxy/claude-sonnet', base_url: 'http://x/v1' })).toBe('claude-sonnet');
    expect(wireModelName({ model: 'openai/gpt-4o', base_url: null })).toBe('gpt-4o');
    expect(wireModelName({ model: 'gpt-4o', base_url: 'http://x/v1' })).toBe('gpt-4o');
  });

  it('classifies failures for ConversationErrorEvent', () => {
    const headers = new Headers();
    expect(classifyLlmError(new OpenAI.AuthenticationError(401, { message: 'bad key' }, 'bad key', headers)).classification.kind).toBe('auth');
    expect(classifyLlmError(new OpenAI.RateLimitError(429, { message: 'slow down' }, 'slow down', headers)).classification).toEqual({
      kind: 'rate_limit',
      retryable: true,
      user_action: 'retry',
    });
    expect(classifyLlmError(new OpenAI.RateLimitError(429, { message: 'You exceeded your current quota' }, 'You exceeded your current quota', headers)).code).toBe('LLMQuotaExceeded');
    expect(classifyLlmError(new OpenAI.APIConnectionError({ message: 'refused' })).classification.kind).toBe('transient');
    expect(classifyLlmError(new Error('???')).classification.kind).toBe('unknown');
  });

  it('counts one LLM call as OpenHands Metrics entries: its cost, latency and token usage under its usage id', () => {
    const llm = { model: 'm', usage_id: 'condenser', input_cost_per_token: 0.001, output_cost_per_token: 0.002 };
    const reply = { responseId: 'r1', content: '', reasoning: null, toolCalls: [], usage: { prompt_tokens: 100, completion_tokens: 10, cached_tokens: 3, reasoning_tokens: 2 }, latencySeconds: 0.5 };
    const call = llmCallUsage(llm, reply);
    expect(call.usageId).toBe('condenser');
    expect(call.cost).toBeCloseTo(0.12);
    expect(call.cost_entry).toMatchObject({ model: 'm', cost: call.cost });
    expect(call.latency_entry).toEqual({ model: 'm', latency: 0.5, response_id: 'r1' });
    expect(call.turn).toMatchObject({ prompt_tokens: 100, completion_tokens: 10, cache_read_tokens: 3, reasoning_tokens: 2, per_turn_token: 110, response_id: 'r1' });
    expect(call.zero).toMatchObject({ model_name: 'm', accumulated_cost: 0, costs: [], token_usages: [] });
    expect(llmCallUsage({ model: 'm' }, reply).usageId).toBe('default');
  });
});
