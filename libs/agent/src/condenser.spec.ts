import { OHEvent } from '@berth/contracts';
import { LlmStub } from '@berth/testing';
import OpenAI from 'openai';
import { condenserFor, eventString, LlmSummarizingCondenser, NoOpCondenser } from './condenser';
import { ConversationHistory } from './conversation-history';
import { buildMessages } from './history';
import { isContextWindowExceeded } from './llm';
import { SUMMARY_SYSTEM_PROMPT } from './summary-prompt';
import { View } from './view';

let n = 0;
const base = (kind: string, source: OHEvent['source'], extra: Record<string, unknown> = {}): OHEvent => ({
  id: `e${++n}`,
  timestamp: `2026-12-06T10:00:00.${String(n).padStart(6, '0')}`,
  source,
  ...extra,
  kind,
});
const system = () => base('SystemPromptEvent', 'agent', { system_prompt: { type: 'text', text: 'SYSTEM' }, tools: [] });
const user = (text: string) => base('MessageEvent', 'user', { llm_message: { role: 'user', content: [{ type: 'text', text }] } });
const think = (callId: string, responseId = `r-${callId}`) =>
  base('ActionEvent', 'agent', {
    thought: [{ type: 'text', text: `thinking ${callId}` }],
    action: { thought: callId, kind: 'ThinkAction' },
    tool_name: 'think',
    tool_call_id: callId,
    tool_call: { id: callId, name: 'think', arguments: JSON.stringify({ thought: callId }) },
    llm_response_id: responseId,
  });
const logged = (callId: string) =>
  base('ObservationEvent', 'environment', {
    tool_name: 'think',
    tool_call_id: callId,
    action_id: 'x',
    observation: { content: [{ type: 'text', text: 'Your thought has been logged.' }], is_error: false, kind: 'ThinkObservation' },
  });
const condensation = (forgotten: string[], summary: string | null, offset: number | null) =>
  base('Condensation', 'environment', { forgotten_event_ids: forgotten, ...(summary !== null ? { summary } : {}), ...(offset !== null ? { summary_offset: offset } : {}), llm_response_id: 'sum' });
const request = () => base('CondensationRequest', 'environment');
/** A conversation: system prompt, the user's message, then `steps` think calls with their observations. */
function conversation(steps: number): OHEvent[] {
  const events = [system(), user('go')];
  for (let i = 0; i < steps; i++) events.push(think(`c${i}`), logged(`c${i}`));
  return events;
}

describe('View', () => {
  it('drops the events a Condensation forgets and places its summary at its offset', () => {
    const events = conversation(3);
    const view = View.fromEvents([...events, condensation([events[2].id, events[3].id], 'SUMMARY', 2)]);
    expect(view.events.map((e) => e.kind)).toEqual(['SystemPromptEvent', 'MessageEvent', 'CondensationSummaryEvent', 'ActionEvent', 'ObservationEvent', 'ActionEvent', 'ObservationEvent']);
    expect(view.events[2]).toMatchObject({ summary: 'SUMMARY', source: 'environment' });
    expect(view.events[2].id).toMatch(/-summary$/);
  });

  it('inserts no summary without an offset, and keeps only LLM-convertible events', () => {
    const events = conversation(1);
    const view = View.fromEvents([...events, base('ConversationStateUpdateEvent', 'environment', { key: 'stats' }), condensation([events[2].id], 'S', null)]);
    expect(view.events.map((e) => e.id)).toEqual([events[0].id, events[1].id, events[3].id]);
  });

  it('marks a CondensationRequest until a Condensation handles it', () => {
    const view = View.fromEvents([...conversation(1), request()]);
    expect(view.unhandledCondensationRequest).toBe(true);
    view.append(condensation([], null, null));
    expect(view.unhandledCondensationRequest).toBe(false);
  });

  it('never cuts inside a batch of actions or between an action and its observation', () => {
    const a = think('a', 'batch');
    const b = think('b', 'batch');
    const view = View.fromEvents([system(), user('go'), a, b, logged('a'), logged('b'), user('more')]);
    const indices = [...view.manipulationIndices()].sort((x, y) => x - y);
    expect(indices).toEqual([0, 1, 2, 6, 7]);
  });
});

describe('ConversationHistory', () => {
  it('builds the same messages incrementally as from the whole view, and rebuilds them after a condensation', () => {
    const events = conversation(5);
    const history = new ConversationHistory();
    for (const e of events) history.add(e);
    expect(history.messages()).toEqual(buildMessages(events));
    const forgotten = events.slice(2, 8).map((e) => e.id);
    history.add(condensation(forgotten, 'WHAT HAPPENED', 2));
    const messages = history.messages();
    expect(messages[2]).toEqual({ role: 'user', content: 'WHAT HAPPENED' });
    expect(JSON.stringify(messages)).not.toContain('"c0"');
    expect(JSON.stringify(messages)).toContain('"c3"');
    expect(messages).toEqual(buildMessages(history.view.events));
  });

  it('takes a delivered message once, at the next step, even when the log read brought it too', () => {
    const history = new ConversationHistory();
    const message = user('mid-run');
    history.deliver(message);
    for (const e of [...conversation(1), message]) history.add(e);
    expect(history.knows(message.id)).toBe(true);
    history.takeDelivered();
    expect(history.messages().filter((m) => m.role === 'user')).toHaveLength(2);
  });

  it('detects a repeating agent within its bounded window', () => {
    const history = new ConversationHistory();
    for (const e of conversation(200)) history.add(e);
    expect(history.isStuck()).toBe(false);
    for (let i = 0; i < 4; i++) {
      const call = think(`same${i}`);
      call.tool_call = { id: `same${i}`, name: 'think', arguments: '{"thought":"again"}' };
      history.add(call);
      history.add(logged(`same${i}`));
    }
    expect(history.isStuck()).toBe(true);
  });
});

describe('eventString', () => {
  it('renders events as the SDK does for the summarizing LLM', () => {
    expect(eventString(user('hello'))).toBe('MessageEvent (user)\n  user: hello');
    expect(eventString(think('c1'))).toBe('ActionEvent (agent)\n  Thought: thinking c1\n  Action: ThinkAction');
    expect(eventString(logged('c1'))).toBe('ObservationEvent (environment)\n  Tool: think\n  Result: Your thought has been logged.');
    expect(eventString(base('AgentErrorEvent', 'agent', { error: 'boom', tool_call_id: 'x' }))).toBe('AgentErrorEvent (agent)\n  Error: boom');
  });
});

describe('condenserFor', () => {
  it('chooses the condenser the agent names', () => {
    expect(condenserFor(null)).toBeNull();
    expect(condenserFor({ kind: 'NoOpCondenser' })).toBeInstanceOf(NoOpCondenser);
    expect(condenserFor({ kind: 'NoOpCondenser' })!.handlesRequests).toBe(false);
    expect(condenserFor({ kind: 'LLMSummarizingCondenser', llm: { model: 'm' } })!.handlesRequests).toBe(true);
  });
});

describe('LlmSummarizingCondenser', () => {
  const stub = new LlmStub();
  let url = '';
  beforeAll(async () => {
    url = await stub.start();
  });
  afterAll(() => stub.stop());
  const condenser = (extra: Record<string, unknown> = {}) =>
    new LlmSummarizingCondenser({ kind: 'LLMSummarizingCondenser', llm: { model: 'openai/summarizer', base_url: url, api_key: 'k', num_retries: 0, usage_id: 'condenser', stream: true }, max_size: 10, keep_first: 2, ...extra });
  const signal = new AbortController().signal;

  it('leaves a view within max_size alone', async () => {
    expect(await condenser().condense(View.fromEvents(conversation(4)), signal)).toBeNull();
  });

  it('forgets the events after keep_first up to a tail of max_size/2 - keep_first - 1, summarized by its own LLM without tools', async () => {
    stub.summaryScript([{ text: 'USER_CONTEXT: go' }]);
    const before = stub.requests.length;
    const events = conversation(5); // 12 events > max_size 10
    const condensed = await condenser().condense(View.fromEvents(events), signal);
    // tail = 10 // 2 - 2 - 1 = 2 events kept after the forgotten range; the summary goes at keep_first.
    expect(condensed!.condensation).toMatchObject({ kind: 'Condensation', source: 'environment', summary: 'USER_CONTEXT: go', summary_offset: 2 });
    expect(condensed!.condensation.forgotten_event_ids).toEqual(events.slice(2, 10).map((e) => e.id));
    expect(condensed!.condensation.llm_response_id).toBe(condensed!.reply.responseId);
    expect(condensed!.llm.usage_id).toBe('condenser');
    const sent = stub.requests.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0].body.tools).toBeUndefined();
    expect(sent[0].body.stream).toBeFalsy();
    expect(sent[0].body.messages[0]).toEqual({ role: 'system', content: SUMMARY_SYSTEM_PROMPT });
    expect(sent[0].body.messages[1].content).toMatch(/^<EVENT>\nActionEvent \(agent\)\n {2}Thought: thinking c0\n {2}Action: ThinkAction\n<\/EVENT>\n\n<EVENT>/);
    expect(sent[0].body.messages[1].content).toMatch(/\n<\/EVENT>\n\n\nNow summarize the events using the rules above\.$/);
  });

  it('goes on without a condensation when only max_size asked and the summary failed', async () => {
    stub.summaryScript([{ status: 500 }]);
    expect(await condenser().condense(View.fromEvents(conversation(5)), signal)).toBeNull();
  });

  it('resets the context (everything after the system prompt summarized) when a request cannot be met otherwise', async () => {
    stub.summaryScript([{ text: 'RESET SUMMARY' }]);
    const events = [...conversation(1), request()];
    const condensed = await condenser().condense(View.fromEvents(events), signal);
    expect(condensed!.condensation).toMatchObject({ summary: 'RESET SUMMARY', summary_offset: 1 });
    expect(condensed!.condensation.forgotten_event_ids).toEqual(events.slice(1, 4).map((e) => e.id));
  });

  // As the SDK, the first error (why no ordinary condensation could be made) is the one raised.
  it('fails a request it cannot meet when every reset attempt fails', async () => {
    stub.summaryScript(() => ({ status: 500 }));
    await expect(condenser({ hard_context_reset_max_retries: 2 }).condense(View.fromEvents([...conversation(1), request()]), signal)).rejects.toThrow(/Unable to compute forgotten events/);
  });
});

describe('isContextWindowExceeded', () => {
  it('recognises the provider errors the SDK maps to LLMContextWindowExceedError', () => {
    const error = (message: string, code: string | null = null) => new OpenAI.BadRequestError(400, { message, code }, message, new Headers());
    expect(isContextWindowExceeded(error('whatever', 'context_length_exceeded'))).toBe(true);
    expect(isContextWindowExceeded(error('prompt is too long: 300000 tokens'))).toBe(true);
    expect(isContextWindowExceeded(error('invalid model'))).toBe(false);
    expect(isContextWindowExceeded(new Error('context length exceeded'))).toBe(false);
  });
});
