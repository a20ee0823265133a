import { OBSERVATION_ERROR_HEADER, observationToLlmContent } from '@berth/contracts';
import type { OHEvent, ToolObservation } from '@berth/contracts';
import type OpenAI from 'openai';

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type ToolCall = OpenAI.Chat.Completions.ChatCompletionMessageToolCall;

const MISSING_OBSERVATION = 'No observation was recorded for this action.';

function texts(content: unknown): string {
  if (!Array.isArray(content)) return typeof content === 'string' ? content : '';
  return content
    .filter((c): c is { type: 'text'; text: string } => c && typeof c === 'object' && c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

function userContent(content: unknown): OpenAI.Chat.Completions.ChatCompletionUserMessageParam['content'] {
  if (!Array.isArray(content)) return String(content ?? '');
  const hasImage = content.some((c) => c?.type === 'image');
  if (!hasImage) return texts(content);
  return content.flatMap((c): OpenAI.Chat.Completions.ChatCompletionContentPart[] =>
    c?.type === 'image'
      ? (c.image_urls as string[]).map((url) => ({ type: 'image_url', image_url: { url } }))
      : [{ type: 'text', text: String(c.text ?? '') }],
  );
}

/** What the LLM reads of an observation, as OpenHands renders it (terminal notes, exit code, error flag). */
export function observationText(observation: { content?: unknown; is_error?: boolean; kind?: string } | undefined): string {
  if (!observation || !Array.isArray(observation.content)) return '';
  return texts(observationToLlmContent(observation as ToolObservation));
}

type AssistantMessage = OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam;

/**
 * The chat messages of a sequence of events, built one event at a time (the loop appends as it
 * records). Consecutive ActionEvents of one LLM response become one assistant message with tool
 * calls; each observation, rejection or agent error answers its call. A call left unanswered (a
 * crash between action and observation that recovery has not yet covered) gets a placeholder
 * answer, because the API refuses a history with unanswered tool calls.
 */
export class MessageBuilder {
  private system: ChatMessage | null = null;
  private readonly body: ChatMessage[] = [];
  private open: { message: AssistantMessage; responseId: unknown; answered: Set<string> } | null = null;

  add(event: OHEvent): void {
    switch (event.kind) {
      case 'SystemPromptEvent':
        // Written when the agent starts, after the message that started it; the LLM reads it first.
        this.system = { role: 'system', content: texts([event.system_prompt, event.dynamic_context].filter(Boolean)) };
        break;
      case 'MessageEvent': {
        this.closeOpen();
        const msg = event.llm_message as { role: string; content: unknown };
        // The SDK's to_llm_message: the skills' knowledge (extended_content) follows the user's content.
        if (msg.role === 'user') this.body.push({ role: 'user', content: userContent([...(msg.content as unknown[]), ...((event.extended_content as unknown[]) ?? [])]) });
        else this.body.push({ role: 'assistant', content: texts(msg.content) });
        break;
      }
      case 'CondensationSummaryEvent':
        // The SDK's summary event speaks as the user (CondensationSummaryEvent.to_llm_message).
        this.closeOpen();
        this.body.push({ role: 'user', content: String(event.summary ?? '') });
        break;
      case 'ActionEvent': {
        const call = event.tool_call as { id: string; name: string; arguments: string };
        if (!this.open || this.open.responseId !== event.llm_response_id || this.open.answered.size > 0) {
          this.closeOpen();
          const thought = texts(event.thought);
          this.open = { message: { role: 'assistant', content: thought || null, tool_calls: [] }, responseId: event.llm_response_id, answered: new Set() };
          this.body.push(this.open.message);
        }
        (this.open.message.tool_calls as ToolCall[]).push({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } });
        break;
      }
      case 'ObservationEvent':
        this.answer(event.tool_call_id, observationText(event.observation as { content?: unknown; is_error?: boolean }));
        break;
      case 'UserRejectObservation':
        this.answer(event.tool_call_id, `Action rejected: ${String(event.rejection_reason ?? 'User rejected the action.')}`);
        break;
      case 'AgentErrorEvent':
        this.answer(event.tool_call_id, OBSERVATION_ERROR_HEADER + String(event.error ?? ''));
        break;
      default:
        break;
    }
  }

  /** The messages so far; calls still open are answered with a placeholder in this copy only. */
  messages(): ChatMessage[] {
    const out = this.system ? [this.system, ...this.body] : [...this.body];
    for (const id of this.unanswered()) out.push({ role: 'tool', tool_call_id: id, content: MISSING_OBSERVATION });
    return out;
  }

  private unanswered(): string[] {
    const open = this.open;
    if (!open) return [];
    return ((open.message.tool_calls ?? []) as ToolCall[]).map((c) => c.id).filter((id) => !open.answered.has(id));
  }

  private closeOpen(): void {
    for (const id of this.unanswered()) this.body.push({ role: 'tool', tool_call_id: id, content: MISSING_OBSERVATION });
    this.open = null;
  }

  private answer(toolCallId: unknown, content: string): void {
    const open = this.open;
    if (typeof toolCallId !== 'string' || !open || open.answered.has(toolCallId)) return;
    if (!(open.message.tool_calls as ToolCall[]).some((c) => c.id === toolCallId)) return;
    open.answered.add(toolCallId);
    this.body.push({ role: 'tool', tool_call_id: toolCallId, content });
  }
}

/** The chat messages of a list of events (see MessageBuilder). */
export function buildMessages(events: OHEvent[]): ChatMessage[] {
  const builder = new MessageBuilder();
  for (const event of events) builder.add(event);
  return builder.messages();
}
