import { condensationEvent, OHEvent } from '@berth/contracts';
import type OpenAI from 'openai';
import { buildMessages, observationText } from './history';
import { complete, createClient, LlmConfig, LlmReply } from './llm';
import { SUMMARY_SYSTEM_PROMPT, summaryEventsPrompt } from './summary-prompt';
import { nextIndex, View } from './view';

type Json = Record<string, any>;

/** A condensation to record, with the condenser LLM's call (its usage counts under its usage_id). */
export interface Condensed {
  condensation: OHEvent;
  llm: LlmConfig;
  reply: LlmReply;
}

/** The SDK's NoCondensationAvailableException: no condensation can be made of this view now. */
export class NoCondensationAvailable extends Error {}

/** The SDK's CondenserBase: given the view, either leaves it as it is (null) or condenses it. */
export abstract class Condenser {
  /** true: a CondensationRequest (POST …/condense, an exceeded context window) makes it condense */
  abstract readonly handlesRequests: boolean;
  abstract condense(view: View, signal: AbortSignal): Promise<Condensed | null>;
}

/** Leaves the view as it is. */
export class NoOpCondenser extends Condenser {
  readonly handlesRequests = false;
  async condense(): Promise<null> {
    return null;
  }
}

/** N_CHAR_PREVIEW of the SDK's event `__str__`. */
const PREVIEW = 500;
const preview = (text: string, ellipsis: 'cut' | 'append') =>
  text.length <= PREVIEW ? text : ellipsis === 'cut' ? `${text.slice(0, PREVIEW - 3)}...` : `${text.slice(0, PREVIEW)}...`;

function contentText(content: unknown): string {
  if (!Array.isArray(content)) return typeof content === 'string' ? content : '';
  return content.map((c) => (c?.type === 'image' ? `[Image: ${(c.image_urls ?? []).length} URLs]` : String(c?.text ?? ''))).join(' ');
}

/** An event as the SDK's `str(event)` shows it to the summarizing LLM. */
export function eventString(e: OHEvent): string {
  const base = `${e.kind} (${e.source})`;
  switch (e.kind) {
    case 'MessageEvent': {
      const msg = e.llm_message as { role: string; content: unknown };
      const text = contentText(msg.content);
      if (!text) return `${base}\n  ${msg.role}: [no text content]`;
      const skills = Array.isArray(e.activated_skills) && e.activated_skills.length ? ` [Skills: ${e.activated_skills.join(', ')}]` : '';
      return `${base}\n  ${msg.role}: ${preview(text, 'cut')}${skills}`;
    }
    case 'ActionEvent': {
      const thought = preview(((e.thought as { text?: string }[]) ?? []).map((t) => t.text ?? '').join(' '), 'append');
      const action = e.action as Json | undefined;
      if (action) return `${base}\n  Thought: ${thought}\n  Action: ${action.kind}`;
      const call = e.tool_call as { id: string; name: string };
      return `${base}\n  Thought: ${thought}\n  Action: (not executed)\n  Call: ${call.name}:${call.id}`;
    }
    case 'ObservationEvent':
      return `${base}\n  Tool: ${e.tool_name}\n  Result: ${preview(observationText(e.observation as Json), 'append')}`;
    case 'UserRejectObservation':
      return `${base}\n  Tool: ${e.tool_name}\n  Reason: ${preview(String(e.rejection_reason ?? ''), 'append')}`;
    case 'AgentErrorEvent':
      return `${base}\n  Error: ${preview(String(e.error ?? ''), 'append')}`;
    case 'CondensationSummaryEvent':
      return `${base}\n  user: ${preview(String(e.summary ?? ''), 'cut')}`;
    case 'SystemPromptEvent':
      return `${base}\n  system: ${preview(String((e.system_prompt as Json)?.text ?? ''), 'cut')}`;
    default:
      return base;
  }
}

/** maybe_truncate: the middle of a long text cut out, head and tail kept. */
function truncateMiddle(text: string, max: number | null): string {
  if (!max || max < 0 || text.length <= max) return text;
  const notice = '<response clipped><NOTE>Due to the max output limit, only part of the full response has been shown to you.</NOTE>';
  const room = Math.max(0, max - notice.length);
  const head = Math.ceil(room / 2);
  return text.slice(0, head) + notice + text.slice(text.length - (room - head));
}

/**
 * Tokens of events as the LLM would read them. Berth has no tokenizer for every model: it counts
 * about four characters a token of the messages' JSON (the SDK asks LiteLLM's tokenizer).
 */
export function estimateTokens(events: OHEvent[]): number {
  return Math.ceil(JSON.stringify(buildMessages(events)).length / 4);
}

type Reason = 'request' | 'tokens' | 'events';

/**
 * The SDK's LLMSummarizingCondenser: when the view holds more than `max_size` events (or more than
 * `max_tokens`, or a CondensationRequest is pending) it forgets the events after the first
 * `keep_first` up to a tail, and asks its own LLM for a summary that takes their place. When a
 * required condensation cannot be made (too little to forget), it does a hard context reset:
 * everything after the system prompt is summarized.
 */
export class LlmSummarizingCondenser extends Condenser {
  readonly handlesRequests = true;
  private readonly llm: LlmConfig;
  private readonly client: OpenAI;
  readonly maxSize: number;
  readonly keepFirst: number;
  readonly maxTokens: number | null;
  private readonly minimumProgress: number;
  private readonly resetRetries: number;
  private readonly resetScaling: number;

  constructor(spec: Json) {
    super();
    // Summaries are read whole: the SDK turns streaming off for them.
    this.llm = { ...(spec.llm as LlmConfig), stream: false };
    this.client = createClient(this.llm);
    this.maxSize = spec.max_size ?? 240;
    this.keepFirst = spec.keep_first ?? 2;
    this.maxTokens = spec.max_tokens ?? null;
    this.minimumProgress = spec.minimum_progress ?? 0.1;
    this.resetRetries = spec.hard_context_reset_max_retries ?? 5;
    this.resetScaling = spec.hard_context_reset_context_scaling ?? 0.8;
  }

  reasons(view: View): Set<Reason> {
    const reasons = new Set<Reason>();
    if (view.unhandledCondensationRequest) reasons.add('request');
    if (this.maxTokens !== null && estimateTokens(view.events) > this.maxTokens) reasons.add('tokens');
    if (view.length > this.maxSize) reasons.add('events');
    return reasons;
  }

  async condense(view: View, signal: AbortSignal): Promise<Condensed | null> {
    const reasons = this.reasons(view);
    if (!reasons.size) return null;
    // Too many events alone is a soft requirement: without a condensation the step goes on with the view.
    const hard = reasons.has('request') || reasons.has('tokens');
    try {
      const { forgotten, offset } = this.forgotten(view, reasons);
      if (!forgotten.length) throw new NoCondensationAvailable('Cannot condense 0 events.');
      if (forgotten.length < view.length * this.minimumProgress) throw new NoCondensationAvailable('events forgotten below minimum progress threshold');
      return await this.summarize(forgotten, offset, null, signal);
    } catch (err) {
      if (!(err instanceof NoCondensationAvailable) || signal.aborted) throw err;
      if (!hard) return null;
      const reset = await this.hardContextReset(view, signal);
      if (reset) return reset;
      throw err;
    }
  }

  /** _get_forgotten_events: the events to forget (on atomic boundaries) and where the summary goes. */
  private forgotten(view: View, reasons: Set<Reason>): { forgotten: OHEvent[]; offset: number } {
    const tails: number[] = [];
    if (reasons.has('request')) tails.push(Math.floor(view.length / 2) - this.keepFirst - 1);
    if (reasons.has('events')) tails.push(Math.floor(this.maxSize / 2) - this.keepFirst - 1);
    if (reasons.has('tokens')) tails.push(this.suffixForTokenReduction(view));
    const fromTail = Math.min(...tails);
    const naiveEnd = view.length - fromTail;
    const system = view.events.findIndex((e) => e.kind === 'SystemPromptEvent');
    const protectedPrefix = system >= 0 ? Math.max(this.keepFirst, system + 1) : this.keepFirst;
    const indices = view.manipulationIndices();
    const start = nextIndex(indices, protectedPrefix);
    const end = nextIndex(indices, naiveEnd);
    if (start === null || end === null) throw new NoCondensationAvailable('Unable to compute forgotten events');
    return { forgotten: view.events.slice(start, end), offset: start };
  }

  /** get_suffix_length_for_token_reduction: how many tail events can stay once the view is under half of max_tokens. */
  private suffixForTokenReduction(view: View): number {
    const events = view.events.slice(this.keepFirst);
    const reduction = estimateTokens(view.events) - Math.floor((this.maxTokens ?? 0) / 2);
    let removed = 0;
    let count = 0;
    while (count < events.length && removed <= reduction) removed += estimateTokens([events[count++]]);
    return events.length - count;
  }

  /** Everything after the system prompt summarized, each event cut shorter after every failed try. */
  private async hardContextReset(view: View, signal: AbortSignal): Promise<Condensed | null> {
    const system = view.events.findIndex((e) => e.kind === 'SystemPromptEvent');
    const preserve = system >= 0 ? system + 1 : 0;
    const forgotten = view.events.slice(preserve);
    let maxLength: number | null = null;
    for (let attempt = 0; attempt < this.resetRetries; attempt++) {
      try {
        if (!forgotten.length) throw new NoCondensationAvailable('No events to condense.');
        return await this.summarize(forgotten, preserve, maxLength, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        maxLength = Math.floor((maxLength ?? Math.max(...view.events.map((e) => eventString(e).length))) * this.resetScaling);
      }
    }
    return null;
  }

  private async summarize(forgotten: OHEvent[], offset: number, maxLength: number | null, signal: AbortSignal): Promise<Condensed> {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: 'system', content: SUMMARY_SYSTEM_PROMPT },
      { role: 'user', content: summaryEventsPrompt(forgotten.map((e) => truncateMiddle(eventString(e), maxLength))) },
    ];
    let reply: LlmReply;
    try {
      reply = await complete(this.client, this.llm, messages, [], signal);
    } catch (err) {
      if (signal.aborted) throw err;
      throw new NoCondensationAvailable(`Summarization LLM call failed: ${(err as Error).message}`);
    }
    const condensation = condensationEvent({
      forgottenEventIds: forgotten.map((e) => e.id),
      summary: reply.content || null,
      summaryOffset: offset,
      llmResponseId: reply.responseId,
    });
    return { condensation, llm: this.llm, reply };
  }
}

/** The condenser an agent's `condenser` names (secrets already opened), or none. */
export function condenserFor(spec: Json | null | undefined): Condenser | null {
  if (!spec) return null;
  if (spec.kind === 'LLMSummarizingCondenser') return new LlmSummarizingCondenser(spec);
  if (spec.kind === 'NoOpCondenser') return new NoOpCondenser();
  return null;
}
