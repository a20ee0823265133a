import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { naiveTimestamp, OHEvent, omitNulls, SECRET_MASK, stateUpdateEvent } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import type { ConversationRow, EventLog } from '@berth/persistence';
import { AgentTool, llmText, ToolCatalog } from './agent-tools';
import type { ToolRuntime } from './agent-runner';
import { customSecretsSection } from './secret-prompt';
import { AgentContext, dynamicContext, projectSkills, withProjectSkills } from './skills';
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
  private readonly logger = new Logger('AgentPreparer');

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
    return (await this.readyAgent(conversation)).event;
  }

  /**
   * The SystemPromptEvent and the agent as it is once ready: with `load_project_skills`, the
   * working dir's skills (read in the sandbox) join its context, as LocalConversation resolves
   * them on the first message; the context's skills, suffix and time make the event's
   * `dynamic_context`, as the SDK's `get_dynamic_context`. `agent` is the one to store (the same
   * object when nothing was added).
   */
  async readyAgent(conversation: ConversationForAgent): Promise<{ event: OHEvent; agent: Json; agentUpdate: OHEvent | null }> {
    const agent = conversation.agent as Json;
    const workingDir = await this.runtime.workingDir(conversation);
    const launchSuffix = (conversation.options as Json).agent_launch_additions?.system_message_suffix_append as string | undefined;
    let context = agent.agent_context as AgentContext | null | undefined;
    let ready = agent;
    if (context?.load_project_skills) {
      const files = await this.runtime.projectSkillFiles(conversation).catch((err: Error) => {
        // As the SDK: skills that cannot be read do not keep the conversation from starting.
        this.logger.warn(`conversation ${conversation.id}: its project skills could not be read: ${err.message}`);
        return [];
      });
      const found = projectSkills(files, (path, reason) => this.logger.warn(`conversation ${conversation.id}: skill ${path} skipped: ${reason}`));
      if (found.length) {
        context = { ...context, skills: withProjectSkills(context, found) };
        ready = { ...agent, agent_context: context };
      }
    }
    // The launch's suffix goes after the context's, as the SDK's _append_system_message_suffix.
    const suffix = [context?.system_message_suffix, launchSuffix].filter((s): s is string => !!s?.trim()).join('\n\n') || null;
    // The conversation's secrets by name; with no agent_context the SDK renders them (and the time) from a default one.
    const secrets = customSecretsSection((conversation.secrets ?? {}) as Json);
    const dynamic = context || suffix || secrets ? dynamicContext({ ...(context ?? {}), system_message_suffix: suffix }, { model: (agent.llm as Json | undefined)?.model ?? null, secrets }) : null;
    const event: OHEvent = {
      id: systemPromptEventId(conversation.id),
      timestamp: naiveTimestamp(),
      source: 'agent',
      system_prompt: llmText(agent.system_prompt ?? systemPrompt(workingDir))[0],
      // Without nulls (meta, annotations.title), as the SDK stores events (exclude_none).
      tools: (await this.agentTools(conversation)).map((t) => omitNulls(t.spec)),
      ...(dynamic ? { dynamic_context: llmText(dynamic)[0] } : {}),
      kind: 'SystemPromptEvent',
    };
    // The SDK records the agent it changed as a state update (without nulls, as events), just before the SystemPromptEvent.
    const agentUpdate = ready === agent ? null : stateUpdateEvent('agent', omitNulls(SecretVault.redactAgent(ready, SECRET_MASK)));
    return { event, agent: ready, agentUpdate };
  }

  /**
   * Writes the SystemPromptEvent unless the conversation has one, with `record` (the worker's is
   * fenced). A concurrent writer of the same event makes `record` fail: that is fine once the event
   * is there.
   */
  async ensure(conversation: ConversationForAgent, record: (event: OHEvent) => Promise<unknown>, store: (agent: Json) => Promise<unknown>): Promise<void> {
    if (await this.hasSystemPrompt(conversation.id)) return;
    const { event, agent, agentUpdate } = await this.readyAgent(conversation);
    try {
      if (agentUpdate) await record(agentUpdate);
      await record(event);
    } catch (err) {
      if (!(await this.hasSystemPrompt(conversation.id))) throw err;
      return;
    }
    if (agent !== conversation.agent) await store(agent);
  }
}
