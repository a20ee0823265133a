import type { OHEvent } from '@berth/contracts';
import type OpenAI from 'openai';
import { buildMessages } from './history';
import { complete, createClient, LlmConfig, LlmReply } from './llm';

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type ChatTool = OpenAI.Chat.Completions.ChatCompletionTool;

/** LLM calls beside the agent loop (a title, ask_agent), as the OpenHands SDK makes them. */

/** The SDK's title length (AutoTitleSubscriber passes 50). */
export const TITLE_MAX_LENGTH = 50;
/** The usage id ask_agent's LLM is counted under in the conversation's stats (the SDK's ASK_AGENT_LLM_USAGE_ID). */
export const ASK_AGENT_USAGE_ID = 'ask-agent-llm';

const TITLE_SYSTEM_PROMPT =
  'You are a helpful assistant that generates concise, descriptive titles for conversations with OpenHands. ' +
  'OpenHands is a helpful AI agent that can interact with a computer to solve tasks using bash terminal, ' +
  'file editor, and browser. Given a user message (which may be truncated), generate a concise, ' +
  'descriptive title for the conversation. Return only the title, with no additional text, quotes, or explanations.';

/** title_utils.categories, rendered as the SDK joins them. */
const TITLE_EMOJIS =
  '💄 frontend: UI and style files\n- 👔 backend: Business logic\n- ✅ test: Tests\n- 👷 devops: CI build system\n- 🚀 deployment: Deploy stuff\n' +
  '- 📦️ dependencies: Packages and dependencies\n- 🗃️ database: Database changes\n- 🔧 chores: Configuration and maintenance\n- ✨ features: New features\n' +
  '- 🐛 bugfix: Bug fixes\n- ⚡️ performance: Performance improvements\n- 🔒️ security: Security fixes\n- 📝 documentation: Documentation\n- ♻️ refactor: Code refactoring';

/** Python's `s[:n]` and `len(s)` count code points, not UTF-16 units. */
const codePoints = (text: string) => Array.from(text);

/** The SDK's shortening: at most `max` characters, the last three `...`. */
function shorten(text: string, max: number): string {
  const chars = codePoints(text);
  return chars.length > max ? `${chars.slice(0, max - 3).join('')}...` : text;
}

/** extract_message_text: a message's text parts joined by spaces, trimmed (null when none). */
export function messageText(content: unknown): string | null {
  if (!Array.isArray(content)) return null;
  const text = content
    .filter((c): c is { type: 'text'; text: string } => c?.type === 'text' && typeof c.text === 'string')
    .map((c) => c.text)
    .join(' ')
    .trim();
  return text || null;
}

/** generate_fallback_title: the message itself, shortened. */
export function fallbackTitle(message: string, maxLength = TITLE_MAX_LENGTH): string {
  return shorten(message.trim(), maxLength);
}

/** The two messages generate_title_with_llm sends; `prompt` is the conversation's own template (its `prompt` option). */
export function titleMessages(message: string, maxLength = TITLE_MAX_LENGTH, prompt?: string | null): ChatMessage[] {
  const truncated = codePoints(message).length > 1000 ? `${codePoints(message).slice(0, 1000).join('')}...(truncated)` : message;
  const template = (prompt ?? '').trim();
  let user: string;
  if (template) {
    user = template.split('{conversation_content}').join(truncated).split('{max_length}').join(String(maxLength));
    if (!template.includes('{conversation_content}')) user = `${user}\n\nConversation content:\n${truncated}`;
  } else {
    user =
      `Generate a title (maximum ${maxLength} characters) for a conversation that starts with this message:\n\n${truncated}.` +
      `Also make sure to include ONE most relevant emoji at the start of the title. Choose the emoji from this list:${TITLE_EMOJIS} `;
  }
  return [
    { role: 'system', content: TITLE_SYSTEM_PROMPT },
    { role: 'user', content: user },
  ];
}

/** strip_reasoning_blocks: inline `<think>` reasoning removed (an unclosed block runs to the end). */
export function stripReasoning(text: string): string {
  return text.replace(/<think>[\s\S]*?<\/think>/gi, '').replace(/<think>[\s\S]*/gi, '');
}

/**
 * generate_title_with_llm: the title the LLM writes (reasoning stripped, shortened), with its reply
 * for the stats; `title` null when it answered nothing usable. An LLM failure throws.
 */
export async function titleFromLlm(llm: LlmConfig, message: string, prompt?: string | null, signal?: AbortSignal): Promise<{ title: string | null; reply: LlmReply }> {
  // One answer read whole: the SDK's generate() takes no token callback here.
  const config = { ...llm, stream: false };
  const reply = await complete(createClient(config), config, titleMessages(message, TITLE_MAX_LENGTH, prompt), [], signal ?? new AbortController().signal);
  const title = stripReasoning(reply.content).trim();
  return { title: title ? shorten(title, TITLE_MAX_LENGTH) : null, reply };
}

/** ask_agent_template.j2, rendered. */
export function askAgentQuestion(question: string): string {
  return (
    '<QUESTION>\nBased on the activity so far answer the following question\n\n## Question\n' +
    `${question}\n\n\n<IMPORTANT>\nThis is a question, do not make any tool call and just answer my question.\n</IMPORTANT>\n</QUESTION>`
  );
}

/** The LLM ask_agent uses: the agent's, under its own usage id, never streaming (the SDK's model_copy). */
export function askAgentLlm(agentLlm: LlmConfig): LlmConfig {
  return { ...agentLlm, usage_id: ASK_AGENT_USAGE_ID, stream: false };
}

/**
 * LocalConversation.ask_agent: the conversation's history as the agent reads it, the question
 * appended, the agent's tools given (so the tool calls in the history make sense); the first text
 * of the answer. No event is written and no state changes.
 */
export async function askAgent(
  llm: LlmConfig,
  events: OHEvent[],
  tools: ChatTool[],
  question: string,
  signal?: AbortSignal,
): Promise<{ response: string; reply: LlmReply }> {
  const config = askAgentLlm(llm);
  const messages: ChatMessage[] = [...buildMessages(events), { role: 'user', content: askAgentQuestion(question) }];
  const reply = await complete(createClient(config), config, messages, tools, signal ?? new AbortController().signal);
  if (!reply.content) throw new Error('Failed to generate summary');
  return { response: reply.content, reply };
}
