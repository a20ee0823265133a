import { createHash } from 'node:crypto';
import { naiveTimestamp, OHEvent, omitNulls } from '@berth/contracts';
import type { ConversationRow, EventLog } from '@berth/persistence';
import { AgentTool, llmText, ToolCatalog } from './agent-tools';
import type { ToolRuntime } from './agent-runner';
import { customSecretsSection } from './secret-prompt';
import { systemPrompt } from './system-prompt';
import type { McpToolSource } from './mcp/mcp-tools';
import { clientTools } from './tool-catalog';

type Json = Record<string, any>;

/** What making the agent ready reads of a conversation (a row, or one about to be written). */
export type ConversationForAgent = Pick<ConversationRow, 'id' | 'tenantId' | 'sandboxId' | 'agent' | 'options' | 'workspace' | 'secrets'>;

/** RFC 4122 namespace of the ids below (a random constant of Berth's). */
const SYSTEM_PROMPT_NAMESPACE = Buffer.from('5b3c1f0e8a2d4c6e9f107a2b3c4d5e6f', 'hex');

/**
 * The id of a conversation's SystemPromptEvent: a name-based (v5) UUID of the conversation's id, so
 * the gateway (before a first message) and a worker (at a run with no message) racing to write it
 * cannot both succeed — the event log keeps ids unique per conversation.
 */
export function systemPromptEventId(conversationId: string): string {
  const hash = createHash('sha1').update(SYSTEM_PROMPT_NAMESPACE).update(conversationId).digest();
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Makes a conversation's agent ready, as OpenHands' `_ensure_agent_ready()` does: its tools and its
 * SystemPromptEvent, the first event of every conversation. OpenHands does it in `send_message`
 * before the user's message is appended (and in `run` when no message came first), so the gateway
 * calls this before it stores a message and the worker at the start of each run. The prompt names
 * the working dir inside the sandbox, so the sandbox is started here (OpenHands, too, starts the
 * agent's tools then).
 */
export class AgentPreparer {
  constructor(
    private readonly catalog: ToolCatalog,
    private readonly runtime: ToolRuntime,
    private readonly log: EventLog,
    private readonly mcp: McpToolSource | null = null,
  ) {}

  /** The tools the LLM is offered: the agent's (those Berth has) and the client's. */
  toolsFor(conversation: Pick<ConversationForAgent, 'agent' | 'options'>): AgentTool[] {
    const options = conversation.options as Json;
    return [...this.catalog.forAgent(conversation.agent as Json), ...clientTools(options.client_tools)];
  }

  /** The agent's tools and its MCP servers' (which needs the servers started in the sandbox: async). */
  async agentTools(conversation: ConversationForAgent): Promise<AgentTool[]> {
    return [...this.toolsFor(conversation), ...((await this.mcp?.toolsFor(conversation)) ?? [])];
  }

  async hasSystemPrompt(conversationId: string): Promise<boolean> {
    return (await this.log.latest(conversationId, 1, ['SystemPromptEvent'])).length > 0;
  }

  /** The conversation's SystemPromptEvent (starting its sandbox to learn its working dir). */
  async systemPromptEvent(conversation: ConversationForAgent): Promise<OHEvent> {
    const agent = conversation.agent as Json;
    const workingDir = await this.runtime.workingDir(conversation);
    const suffix = (conversation.options as Json).agent_launch_additions?.system_message_suffix_append ?? agent.agent_context?.system_message_suffix;
    // The SDK's dynamic context: the conversation's secrets by name (a second text block of the system message).
    const secrets = customSecretsSection((conversation.secrets ?? {}) as Json);
    return {
      id: systemPromptEventId(conversation.id),
      timestamp: naiveTimestamp(),
      source: 'agent',
      system_prompt: llmText(agent.system_prompt ?? systemPrompt(workingDir, suffix))[0],
      // Without nulls (meta, annotations.title), as the SDK stores events (exclude_none).
      tools: (await this.agentTools(conversation)).map((t) => omitNulls(t.spec)),
      ...(secrets ? { dynamic_context: { cache_prompt: false, type: 'text', text: secrets } } : {}),
      kind: 'SystemPromptEvent',
    };
  }

  /**
   * Writes the SystemPromptEvent unless the conversation has one, with `record` (the worker's is
   * fenced). A concurrent writer of the same event makes `record` fail: that is fine once the event
   * is there.
   */
  async ensure(conversation: ConversationForAgent, record: (event: OHEvent) => Promise<unknown>): Promise<void> {
    if (await this.hasSystemPrompt(conversation.id)) return;
    const event = await this.systemPromptEvent(conversation);
    try {
      await record(event);
    } catch (err) {
      if (!(await this.hasSystemPrompt(conversation.id))) throw err;
    }
  }
}
