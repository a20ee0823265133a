import { inSpan, llmRequestDuration, llmTokens } from '@berth/metrics';
import type { StreamChunk } from './stream-slot';
import OpenAI from 'openai';

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type ChatTool = OpenAI.Chat.Completions.ChatCompletionTool;

/** The `agent.llm` fields the loop uses (secrets already decrypted, in the worker only). */
export interface LlmConfig {
  model: string;
  api_key?: string | null;
  base_url?: string | null;
  temperature?: number | null;
  top_p?: number | null;
  max_output_tokens?: number | null;
  timeout?: number | null;
  num_retries?: number | null;
  stream?: boolean | null;
  usage_id?: string | null;
  input_cost_per_token?: number | null;
  output_cost_per_token?: number | null;
  extra_headers?: Record<string, string> | null;
}

export interface LlmReply {
  responseId: string;
  content: string;
  reasoning: string | null;
  toolCalls: { id: string; name: string; arguments: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens: number; reasoning_tokens: number };
  latencySeconds: number;
}

/**
 * The model name to send: LiteLLM-style provider prefixes (`openai/`, `litellm_proxy/`, …) mean
 * nothing to an OpenAI-compatible endpoint, so they are dropped when a base_url is given.
 */
export function wireModelName(llm: LlmConfig): string {
  if (!llm.base_url) return llm.model.startsWith('openai/') ? llm.model.slice('openai/'.length) : llm.model;
  const slash = llm.model.indexOf('/');
  return slash > 0 ? llm.model.slice(slash + 1) : llm.model;
}

export function createClient(llm: LlmConfig): OpenAI {
  return new OpenAI({
    apiKey: llm.api_key ?? 'no-key',
    baseURL: llm.base_url ?? undefined,
    // The SDK retries 408/409/429/5xx and connection errors with exponential backoff, honouring Retry-After.
    maxRetries: llm.num_retries ?? 5,
    timeout: (llm.timeout ?? 300) * 1000,
    defaultHeaders: llm.extra_headers ?? undefined,
  });
}

/**
 * One chat completion with tools; streams when the LLM config asks, reporting each piece of text and
 * reasoning. Measured (latency and tokens by model) and traced (an `llm.completion` span).
 */
export async function complete(
  client: OpenAI,
  llm: LlmConfig,
  messages: ChatMessage[],
  tools: ChatTool[],
  signal: AbortSignal,
  onChunk?: (chunk: StreamChunk) => void,
): Promise<LlmReply> {
  return inSpan('llm.completion', { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': llm.model, 'berth.llm.stream': Boolean(llm.stream) }, async (span) => {
    const started = performance.now();
    try {
      const reply = await chatCompletion(client, llm, messages, tools, signal, onChunk);
      llmRequestDuration.observe({ model: llm.model, outcome: 'ok' }, reply.latencySeconds);
      llmTokens.inc({ model: llm.model, kind: 'prompt' }, reply.usage.prompt_tokens);
      llmTokens.inc({ model: llm.model, kind: 'completion' }, reply.usage.completion_tokens);
      span.setAttributes({ 'gen_ai.response.id': reply.responseId, 'gen_ai.usage.input_tokens': reply.usage.prompt_tokens, 'gen_ai.usage.output_tokens': reply.usage.completion_tokens });
      return reply;
    } catch (err) {
      llmRequestDuration.observe({ model: llm.model, outcome: 'error' }, (performance.now() - started) / 1000);
      throw err;
    }
  });
}

async function chatCompletion(
  client: OpenAI,
  llm: LlmConfig,
  messages: ChatMessage[],
  tools: ChatTool[],
  signal: AbortSignal,
  onChunk?: (chunk: StreamChunk) => void,
): Promise<LlmReply> {
  const started = performance.now();
  const body = {
    model: wireModelName(llm),
    messages,
    ...(tools.length ? { tools, tool_choice: 'auto' as const } : {}),
    ...(llm.temperature != null ? { temperature: llm.temperature } : {}),
    ...(llm.top_p != null ? { top_p: llm.top_p } : {}),
    ...(llm.max_output_tokens != null ? { max_tokens: llm.max_output_tokens } : {}),
  };
  if (!llm.stream) {
    const res = await client.chat.completions.create(body, { signal });
    const message = res.choices[0]?.message;
    return {
      responseId: res.id,
      content: message?.content ?? '',
      reasoning: (message as { reasoning_content?: string } | undefined)?.reasoning_content ?? null,
      toolCalls: (message?.tool_calls ?? [])
        .filter((c): c is OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall => c.type === 'function')
        .map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
      usage: usageOf(res.usage),
      latencySeconds: (performance.now() - started) / 1000,
    };
  }
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, { signal });
  let responseId = '';
  let content = '';
  let reasoning = '';
  let usage = usageOf(undefined);
  const calls: { id: string; name: string; arguments: string }[] = [];
  // The request's signal stops the fetch, not a body already streaming: an abort mid-stream cancels it here.
  const cancel = () => stream.controller.abort();
  signal.addEventListener('abort', cancel, { once: true });
  try {
    for await (const chunk of stream) {
      responseId ||= chunk.id;
      if (chunk.usage) usage = usageOf(chunk.usage);
      const choice = chunk.choices[0];
      const delta = choice?.delta as (OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null }) | undefined;
      if (!delta) continue;
      // OpenAI-compatible servers that reason (DeepSeek, vLLM, LiteLLM) stream it as reasoning_content.
      if (typeof delta.reasoning_content === 'string' && delta.reasoning_content) {
        reasoning += delta.reasoning_content;
        onChunk?.({ kind: 'reasoning', content: delta.reasoning_content, chunkId: chunk.id ?? null, choiceIndex: choice.index ?? null });
      }
      if (delta.content) {
        content += delta.content;
        onChunk?.({ kind: 'text', content: delta.content, chunkId: chunk.id ?? null, choiceIndex: choice.index ?? null });
      }
      for (const part of delta.tool_calls ?? []) {
        const call = (calls[part.index] ??= { id: '', name: '', arguments: '' });
        if (part.id) call.id = part.id;
        if (part.function?.name) call.name += part.function.name;
        if (part.function?.arguments) call.arguments += part.function.arguments;
      }
    }
  } finally {
    signal.removeEventListener('abort', cancel);
  }
  if (signal.aborted) throw new OpenAI.APIUserAbortError();
  return { responseId, content, reasoning: reasoning || null, toolCalls: calls.filter(Boolean), usage, latencySeconds: (performance.now() - started) / 1000 };
}

function usageOf(usage: OpenAI.Completions.CompletionUsage | undefined | null): LlmReply['usage'] {
  return {
    prompt_tokens: usage?.prompt_tokens ?? 0,
    completion_tokens: usage?.completion_tokens ?? 0,
    cached_tokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
    reasoning_tokens: usage?.completion_tokens_details?.reasoning_tokens ?? 0,
  };
}

/** LONG_PROMPT_PATTERNS of the SDK's classifier (LiteLLM's ContextWindowExceededError comes from the code). */
const CONTEXT_WINDOW_PATTERNS = [
  'contextwindowexceedederror',
  'prompt is too long',
  'input length and `max_tokens` exceed context limit',
  'please reduce the length of',
  'exceeds the available context size',
  'context length exceeded',
  'input exceeds the context window',
  'context window exceeds limit',
  'maximum context length',
];

/** The LLM refused the request because the history no longer fits its context window. */
export function isContextWindowExceeded(err: unknown): boolean {
  if (!(err instanceof OpenAI.APIError)) return false;
  if (err.code === 'context_length_exceeded') return true;
  const message = err.message.toLowerCase();
  return CONTEXT_WINDOW_PATTERNS.some((p) => message.includes(p));
}

export interface ErrorClassification {
  kind: 'auth' | 'quota' | 'rate_limit' | 'config' | 'transient' | 'internal' | 'unknown';
  retryable: boolean;
  user_action: 'none' | 'retry' | 'settings';
}

/** Names an LLM failure for ConversationErrorEvent: what kind, can a retry help, what to do. */
export function classifyLlmError(err: unknown): { code: string; detail: string; classification: ErrorClassification } {
  const detail = (err as Error)?.message ?? String(err);
  if (err instanceof OpenAI.AuthenticationError || err instanceof OpenAI.PermissionDeniedError) {
    return { code: 'LLMAuthenticationError', detail, classification: { kind: 'auth', retryable: false, user_action: 'settings' } };
  }
  if (err instanceof OpenAI.RateLimitError) {
    const quota = /quota|billing|insufficient/i.test(detail) || (err as { code?: string }).code === 'insufficient_quota';
    return quota
      ? { code: 'LLMQuotaExceeded', detail, classification: { kind: 'quota', retryable: false, user_action: 'settings' } }
      : { code: 'LLMRateLimitError', detail, classification: { kind: 'rate_limit', retryable: true, user_action: 'retry' } };
  }
  if (err instanceof OpenAI.APIError && err.status === 402) {
    return { code: 'LLMQuotaExceeded', detail, classification: { kind: 'quota', retryable: false, user_action: 'settings' } };
  }
  if (err instanceof OpenAI.NotFoundError || err instanceof OpenAI.BadRequestError || err instanceof OpenAI.UnprocessableEntityError) {
    return { code: 'LLMBadRequestError', detail, classification: { kind: 'config', retryable: false, user_action: 'settings' } };
  }
  if (err instanceof OpenAI.APIConnectionError || err instanceof OpenAI.InternalServerError || (err instanceof OpenAI.APIError && (err.status ?? 0) >= 500)) {
    return { code: 'LLMServiceUnavailable', detail, classification: { kind: 'transient', retryable: true, user_action: 'retry' } };
  }
  return { code: 'AgentRuntimeError', detail, classification: { kind: 'unknown', retryable: false, user_action: 'none' } };
}
