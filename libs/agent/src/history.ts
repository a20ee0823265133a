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

/**
 * Rebuilds the chat history from the event log, so any worker can continue any conversation.
 * Consecutive ActionEvents of one LLM response become one assistant message with tool calls; each
 * observation, rejection or agent error answers its call. A call left unanswered (a crash between
 * action and observation that recovery has not yet covered) gets a placeholder answer, because the
 * API refuses a history with unanswered tool calls.
 */
export function buildMessages(events: OHEvent[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  let open: { message: OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam; responseId: unknown; answered: Set<string> } | null = null;

  const closeOpen = () => {
    if (!open) return;
    for (const call of (open.message.tool_calls ?? []) as ToolCall[]) {
      if (!open.answered.has(call.id)) messages.push({ role: 'tool', tool_call_id: call.id, content: MISSING_OBSERVATION });
    }
    open = null;
  };
  const answer = (toolCallId: unknown, content: string) => {
    if (typeof toolCallId !== 'string') return;
    if (open && !open.answered.has(toolCallId) && (open.message.tool_calls as ToolCall[]).some((c) => c.id === toolCallId)) {
      open.answered.add(toolCallId);
      messages.push({ role: 'tool', tool_call_id: toolCallId, content });
    }
  };

  for (const event of events) {
    switch (event.kind) {
      case 'SystemPromptEvent':
        // Written when the agent starts, after the message that started it; the LLM reads it first.
        messages.unshift({ role: 'system', content: texts([event.system_prompt, event.dynamic_context].filter(Boolean)) });
        break;
      case 'MessageEvent': {
        closeOpen();
        const msg = event.llm_message as { role: string; content: unknown };
        // The SDK's to_llm_message: the skills' knowledge (extended_content) follows the user's content.
        if (msg.role === 'user') messages.push({ role: 'user', content: userContent([...(msg.content as unknown[]), ...((event.extended_content as unknown[]) ?? [])]) });
        else messages.push({ role: 'assistant', content: texts(msg.content) });
        break;
      }
      case 'ActionEvent': {
        const call = event.tool_call as { id: string; name: string; arguments: string };
        if (!open || open.responseId !== event.llm_response_id || open.answered.size > 0) {
          closeOpen();
          const thought = texts(event.thought);
          open = {
            message: { role: 'assistant', content: thought || null, tool_calls: [] },
            responseId: event.llm_response_id,
            answered: new Set(),
          };
          messages.push(open.message);
        }
        (open.message.tool_calls as ToolCall[]).push({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } });
        break;
      }
      case 'ObservationEvent':
        answer(event.tool_call_id, observationText(event.observation as { content?: unknown; is_error?: boolean }));
        break;
      case 'UserRejectObservation':
        answer(event.tool_call_id, `Action rejected: ${String(event.rejection_reason ?? 'User rejected the action.')}`);
        break;
      case 'AgentErrorEvent':
        answer(event.tool_call_id, OBSERVATION_ERROR_HEADER + String(event.error ?? ''));
        break;
      default:
        break;
    }
  }
  closeOpen();
  return messages;
}
