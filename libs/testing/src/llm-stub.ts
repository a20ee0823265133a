import { closeServer, listenLocally, readBody } from './local-http';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';

/** One scripted LLM turn: a text answer, tool calls, an HTTP error, and/or a delay. */
export interface StubTurn {
  text?: string;
  /** reasoning the model shows (`reasoning_content`), streamed before the text */
  reasoning?: string;
  /** streaming: the pause after each piece of text (a stream that is still going when the client acts) */
  chunkDelayMs?: number;
  toolCalls?: { name: string; arguments: Record<string, unknown> | string }[];
  /** answer with this HTTP status and an OpenAI-style error body instead */
  status?: number;
  errorCode?: string;
  delayMs?: number;
  usage?: { prompt_tokens: number; completion_tokens: number };
}

export type StubScript = StubTurn[] | ((request: StubRequest, turn: number) => StubTurn);

export interface StubRequest {
  /** performance.now() when the request arrived (the gaps between a run's requests are its per-step overhead) */
  receivedAt: number;
  headers: IncomingMessage['headers'];
  body: {
    model: string;
    messages: { role: string; content: unknown; tool_calls?: unknown[]; tool_call_id?: string }[];
    tools?: { type: string; function: { name: string; parameters: unknown } }[];
    stream?: boolean;
    [key: string]: unknown;
  };
}

function firstUserText(request: StubRequest): string {
  const first = request.body.messages.find((m) => m.role === 'user');
  if (!first) return '';
  if (typeof first.content === 'string') return first.content;
  return (first.content as { type: string; text?: string }[]).filter((c) => c.type === 'text').map((c) => c.text).join('');
}

/** The system prompt of OpenHands' (and Berth's) title requests. */
const TITLE_SYSTEM_PROMPT = /^You are a helpful assistant that generates concise, descriptive titles for conversations with OpenHands\./;

/** A conversation-title request (no tools, the title system prompt), as the server makes one after a first message. */
export function isTitleRequest(request: StubRequest): boolean {
  return !request.body.tools?.length && TITLE_SYSTEM_PROMPT.test(systemText(request));
}

/** The text of a request's system message ('' without one). */
function systemText(request: StubRequest): string {
  const system = request.body.messages.find((m) => m.role === 'system');
  if (typeof system?.content === 'string') return system.content;
  return ((system?.content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');
}

/** What a title request gets when no script answers it: a title, as any LLM would give. */
export const STUB_TITLE = '✨ Stub title';

/** The user's own text of a first message that skills extended (their `<EXTRA_INFO>` follows it). */
function withoutSkillKnowledge(text: string): string {
  return text.split(/\n?<EXTRA_INFO>/)[0];
}

/** The first words of the summarizing condenser's system prompt (openhands-sdk's summarizing_system.j2). */
const SUMMARY_PROMPT_START = 'You are maintaining a context-aware state summary';

/** A condenser's summary request: its system message is the summarizing prompt. */
export function isSummaryRequest(request: StubRequest): boolean {
  return systemText(request).startsWith(SUMMARY_PROMPT_START);
}

/**
 * A scripted OpenAI-compatible chat-completions server (streaming and not), standing in for a paid
 * LLM. Scripts are chosen by the text of the conversation's first user message, so concurrent
 * conversations each follow their own; every request is recorded for assertions.
 */
export class LlmStub {
  readonly requests: StubRequest[] = [];
  private readonly scripts = new Map<string, StubScript>();
  private readonly turns = new Map<string, number>();
  private fallback?: StubScript;
  private summaries?: StubScript;
  private server?: Server;
  url = '';

  /** Registers the script for conversations whose first user message is `firstMessage`. */
  script(firstMessage: string, script: StubScript): void {
    this.scripts.set(firstMessage, script);
    this.turns.delete(firstMessage);
  }

  /** Script for condensers' summary requests (whatever the conversation); they go to the other scripts without it. */
  summaryScript(script: StubScript): void {
    this.summaries = script;
    this.turns.delete(SUMMARY_PROMPT_START);
  }

  summaryRequests(): StubRequest[] {
    return this.requests.filter(isSummaryRequest);
  }

  /** Script for any conversation without its own. */
  fallbackScript(script: StubScript): void {
    this.fallback = script;
  }

  requestsFor(firstMessage: string): StubRequest[] {
    return this.requests.filter((r) => this.keyOf(r) === firstMessage);
  }

  /** The script key of a request: its first user text, or that text without the knowledge skills added to it. */
  private keyOf(request: StubRequest): string {
    const text = firstUserText(request);
    return this.scripts.has(text) ? text : withoutSkillKnowledge(text);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 1000;
    this.url = `http://127.0.0.1:${await listenLocally(this.server)}/v1`;
    return this.url;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req);
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    const request: StubRequest = { receivedAt: performance.now(), headers: req.headers, body: JSON.parse(text) };
    this.requests.push(request);
    const summary = this.summaries && isSummaryRequest(request);
    const key = summary ? SUMMARY_PROMPT_START : this.keyOf(request);
    const script = summary ? this.summaries : (this.scripts.get(key) ?? this.fallback);
    const turnIndex = this.turns.get(key) ?? 0;
    this.turns.set(key, turnIndex + 1);
    const turn: StubTurn | undefined = !script ? (isTitleRequest(request) ? { text: STUB_TITLE } : undefined) : typeof script === 'function' ? script(request, turnIndex) : script[turnIndex];
    if (!turn) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no scripted turn ${turnIndex} for "${key}"` } }));
      return;
    }
    if (turn.delayMs) {
      const closed = new Promise<void>((resolve) => res.on('close', resolve));
      await Promise.race([new Promise((r) => setTimeout(r, turn.delayMs)), closed]);
      if (res.destroyed || res.writableEnded) return;
    }
    if (turn.status) {
      res.writeHead(turn.status, { 'content-type': 'application/json' }).end(
        JSON.stringify({ error: { message: `stub error ${turn.status}`, type: turn.errorCode ?? 'stub_error', code: turn.errorCode ?? null } }),
      );
      return;
    }
    const toolCalls = (turn.toolCalls ?? []).map((call, i) => ({
      id: `call_${turnIndex}_${i}_${Math.random().toString(36).slice(2, 8)}`,
      type: 'function',
      function: { name: call.name, arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments) },
    }));
    const usage = { ...(turn.usage ?? { prompt_tokens: 100, completion_tokens: 20 }) };
    const id = `chatcmpl-${turnIndex}-${Date.now()}`;
    const message = { role: 'assistant', content: turn.text ?? null, ...(turn.reasoning ? { reasoning_content: turn.reasoning } : {}), ...(toolCalls.length ? { tool_calls: toolCalls } : {}) };
    const finish = toolCalls.length ? 'tool_calls' : 'stop';
    const totals = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
    if (!request.body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ id, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: request.body.model, choices: [{ index: 0, message, finish_reason: finish }], usage: totals }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (delta: object, finishReason: string | null = null, extra: object = {}) =>
      res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: request.body.model, choices: [{ index: 0, delta, finish_reason: finishReason }], ...extra })}\n\n`);
    send({ role: 'assistant', content: '' });
    for (const piece of (turn.reasoning ?? '').match(/.{1,8}/gs) ?? []) send({ reasoning_content: piece });
    for (const piece of (turn.text ?? '').match(/.{1,8}/gs) ?? []) {
      send({ content: piece });
      if (turn.chunkDelayMs) await new Promise((r) => setTimeout(r, turn.chunkDelayMs));
      if (res.destroyed) return;
    }
    toolCalls.forEach((call, index) => {
      send({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] });
      for (const piece of call.function.arguments.match(/.{1,16}/gs) ?? []) send({ tool_calls: [{ index, function: { arguments: piece } }] });
    });
    send({}, finish);
    res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: request.body.model, choices: [], usage: totals })}\n\n`);
    res.end('data: [DONE]\n\n');
  }
}
