import { newUuid } from './ids';
import { naiveTimestamp } from './time';

export type EventSource = 'agent' | 'user' | 'environment' | 'hook';
export const EVENT_SOURCES: readonly EventSource[] = ['agent', 'user', 'environment', 'hook'];

/** An OpenHands event as it travels on the wire: `kind` names the Python class. */
export interface OHEvent {
  id: string;
  timestamp: string;
  source: EventSource;
  kind: string;
  [field: string]: unknown;
}

export interface TextContent {
  type: 'text';
  text: string;
  cache_prompt?: boolean;
}
export interface ImageContent {
  type: 'image';
  image_urls: string[];
  cache_prompt?: boolean;
}
export type Content = TextContent | ImageContent;

/** Event kinds that are published on the socket but never stored (contract §6.2). */
export const TRANSIENT_EVENT_KINDS = new Set(['StreamingDeltaEvent', 'ServerErrorEvent']);

/** `kind` filters accept bare class names and Python-qualified ones (`openhands.sdk…MessageEvent`). */
export function bareKind(kind: string): string {
  const dot = kind.lastIndexOf('.');
  return dot >= 0 ? kind.slice(dot + 1) : kind;
}

/** pydantic's `exclude_none`: drops null/undefined object members at every depth. */
export function omitNulls<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => omitNulls(v)) as T;
  if (value && typeof value === 'object' && value.constructor === Object) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = omitNulls(v);
    return out as T;
  }
  return value;
}

function envelope(source: EventSource): Pick<OHEvent, 'id' | 'timestamp' | 'source'> {
  return { id: newUuid(), timestamp: naiveTimestamp(), source };
}

export function normalizeContent(content: Content[]): Content[] {
  return content.map((c) =>
    c.type === 'text'
      ? { cache_prompt: c.cache_prompt ?? false, type: 'text', text: c.text }
      : { cache_prompt: c.cache_prompt ?? false, type: 'image', image_urls: c.image_urls },
  );
}

export function messageEvent(role: 'user' | 'assistant', source: EventSource, content: Content[], sender?: string | null): OHEvent {
  return omitNulls({
    ...envelope(source),
    llm_message: { role, content: normalizeContent(content), thinking_blocks: [] },
    activated_skills: [],
    extended_content: [],
    sender: sender ?? null,
    kind: 'MessageEvent',
  });
}

export function stateUpdateEvent(key: string, value: unknown): OHEvent {
  return { ...envelope('environment'), key, value, kind: 'ConversationStateUpdateEvent' };
}

export function pauseEvent(): OHEvent {
  return { ...envelope('user'), kind: 'PauseEvent' };
}

export function interruptEvent(): OHEvent {
  return { ...envelope('user'), kind: 'InterruptEvent' };
}

export function serverErrorEvent(code: string, detail: string): OHEvent {
  return { ...envelope('environment'), code, detail, kind: 'ServerErrorEvent' };
}

export function userRejectObservation(action: OHEvent, reason: string): OHEvent {
  return {
    ...envelope('environment'),
    tool_name: action.tool_name,
    tool_call_id: action.tool_call_id,
    action_id: action.id,
    rejection_reason: reason,
    rejection_source: 'user',
    kind: 'UserRejectObservation',
  };
}

function textsOf(content: unknown): string[] {
  if (!Array.isArray(content)) return [];
  return content.flatMap((c) => (c && typeof c === 'object' && (c as TextContent).type === 'text' ? [String((c as TextContent).text)] : []));
}

/** The text the `body` filter searches: message content, extended content and reasoning. */
export function messageSearchText(event: OHEvent): string | null {
  if (bareKind(event.kind) !== 'MessageEvent') return null;
  const msg = (event.llm_message ?? {}) as { content?: unknown; reasoning_content?: unknown };
  const parts = [...textsOf(msg.content), ...textsOf(event.extended_content)];
  if (typeof msg.reasoning_content === 'string') parts.push(msg.reasoning_content);
  return parts.join('\n').toLowerCase();
}

/** Final answer of a conversation: the last `finish` message, else the last agent message (contract §3.2). */
export function finalResponseText(eventsNewestFirst: OHEvent[]): string {
  for (const e of eventsNewestFirst) {
    if (e.kind === 'ActionEvent' && e.tool_name === 'finish') {
      const action = e.action as { message?: unknown } | undefined;
      if (action && typeof action.message === 'string') return action.message;
    }
    if (e.kind === 'MessageEvent' && e.source === 'agent') {
      return textsOf((e.llm_message as { content?: unknown } | undefined)?.content).join('');
    }
  }
  return '';
}
