import { Logger } from '@nestjs/common';
import { ConversationStatus, EventBus, EventRecorder } from '@berth/bus';
import {
  ACTION_ANSWER_KINDS,
  condensationRequestEvent,
  messageEvent,
  naiveTimestamp,
  newUuid,
  OHEvent,
  omitNulls,
  ProjectSkillFile,
  stateUpdateEvent,
  STATUS_TRANSITIONS,
  TransitionBy,
  unmatchedActions,
} from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { inSpan } from '@berth/metrics';
import { ConversationChange, ConversationRepository, ConversationRow, ConversationRunRow, EventLog, LlmCallUsage, Prisma, RunFenceLost, tenantScope } from '@berth/persistence';
import { AgentTool, llmText } from './agent-tools';
import type { AgentPreparer } from './agent-ready';
import { Condenser, condenserFor } from './condenser';
import { ConversationHistory } from './conversation-history';
import { classifyLlmError, complete, createClient, isContextWindowExceeded, LlmConfig, LlmReply } from './llm';
import { llmCallUsage } from './metrics';
import { LookupHosts, SecretRegistry } from './secret-registry';
import { extractSecurityRisk, requiresConfirmation, securityAnalysisEvent } from './security';
import { StreamSlot } from './stream-slot';

type Json = Record<string, any>;

/** What a tool runtime reads of a conversation: whose it is, its sandbox (made on first use) and its working dir. */
export type ConversationPlace = Pick<ConversationRow, 'id' | 'tenantId' | 'sandboxId' | 'workspace'>;

/** Where sandbox tools run: the conversation's sandbox, reached through its driver. */
export abstract class ToolRuntime {
  /** The directory the agent works in, inside its sandbox (created on demand). */
  abstract workingDir(conversation: ConversationPlace): Promise<string>;
  /** `env`: variables for this one terminal command (the secrets it names). */
  abstract execute(conversation: ConversationRunRow, tool: string, action: Json, signal: AbortSignal, env?: Record<string, string>): Promise<Json>;
  /** The files of the working dir's project skills (skills.ts parses them), read inside the sandbox. */
  abstract projectSkillFiles(conversation: ConversationPlace): Promise<ProjectSkillFile[]>;
}

export class ToolFailure extends Error {}

/** What a worker holds while it runs a conversation. */
export interface RunHold {
  /** the run's fence, taken with the lease (ConversationRepository.takeRun) */
  fence: number;
  /** aborted when the run is no longer this worker's: the loop stops at once and writes nothing more */
  lost: AbortSignal;
  /** aborted when the worker stops: the loop ends after the step in flight, leaving the run `running` */
  stopping: AbortSignal;
}

/** The agent loop's lines, among them one per status change of a run (README "Logs"). */
const runLog = new Logger('AgentRunner');

/**
 * The writes of one run, each applied only while the run still owns its conversation (its fence):
 * a loop that lost its lease fails with RunFenceLost before it stores anything more.
 */
class FencedRun {
  readonly scope;
  /** The conversation's secrets for this run: exported to the commands that name them, masked in all it records. */
  readonly secrets: SecretRegistry;

  constructor(
    readonly tenantId: string,
    readonly id: string,
    private readonly hold: RunHold,
    private readonly conversations: ConversationRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly status: ConversationStatus,
    vault: SecretVault,
    lookupHosts: LookupHosts,
    /** the run's history in memory: every event recorded here is appended to it */
    readonly history: ConversationHistory,
  ) {
    this.scope = tenantScope(tenantId);
    this.secrets = new SecretRegistry(vault, lookupHosts);
  }

  get lost(): boolean {
    return this.hold.lost.aborted;
  }

  /** Throws RunFenceLost once the lease is lost, or (`inDatabase`) once another run took the conversation. */
  async check(inDatabase = false): Promise<void> {
    if (this.lost) throw new RunFenceLost(this.id);
    if (inDatabase) await this.conversations.checkFence(this.id, this.hold.fence);
  }

  async record(event: OHEvent): Promise<number> {
    await this.check();
    const seq = await this.log.append(this.id, event, undefined, this.hold.fence);
    this.history.add(event);
    await this.recorder.publish(this.id, [{ seq, event }]);
    return seq;
  }

  async transition(transition: TransitionBy<'run'>, data: ConversationChange = {}): Promise<boolean> {
    await this.check();
    const moved = await this.conversations.setStatus(this.scope, this.id, transition, data, this.hold.fence);
    if (moved) {
      runLog.log({ msg: 'run status', conversation_id: this.id, tenant_id: this.tenantId, run_fence: this.hold.fence, transition, status: STATUS_TRANSITIONS[transition].to });
      await this.status.announce(this.tenantId, this.id, STATUS_TRANSITIONS[transition].to);
    }
    return moved;
  }

  async update(data: ConversationChange): Promise<void> {
    await this.check();
    await this.conversations.update(this.scope, this.id, data, this.hold.fence);
  }

  async modify(change: (row: ConversationRow) => ConversationChange): Promise<ConversationRow | null> {
    await this.check();
    return this.conversations.modify(this.scope, this.id, change, this.hold.fence);
  }

  async addUsage(call: LlmCallUsage): Promise<Json | null> {
    await this.check();
    return this.conversations.addUsage(this.scope, this.id, call, this.hold.fence);
  }
}

const RESTARTED =
  'A restart occurred while this tool was in progress. The tool call was interrupted and its result is unknown; ' +
  'check the current state before repeating it.';

/**
 * The agent loop of one run: ask the LLM, record its actions, run them, record what they observed,
 * until it finishes, errs, gets stuck, is paused between steps, or is interrupted (which aborts the
 * LLM call in flight). Its history is read from the event log once, at the start of the run, and
 * kept in memory (ConversationHistory); a gateway's messages and interrupts reach it as run signals.
 * So any worker can take over a run that another one dropped; actions left without an observation
 * get an AgentErrorEvent first. The agent's condenser keeps the history the LLM reads bounded.
 * Every write is fenced (FencedRun): a loop whose run was taken over stops before it acts again.
 */
export class AgentRunner {
  constructor(
    private readonly conversations: ConversationRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly status: ConversationStatus,
    private readonly bus: EventBus,
    private readonly vault: SecretVault,
    private readonly preparer: AgentPreparer,
    private readonly runtime: ToolRuntime,
    private readonly secretLookupHosts: LookupHosts = 'public',
  ) {}

  async run(tenantId: string, conversationId: string, hold: RunHold): Promise<void> {
    const interrupt = new AbortController();
    const history = new ConversationHistory();
    // Subscribed before the log is read, so nothing a gateway stores meanwhile is missed (the history drops doubles).
    const unsubscribe = await this.bus.onRunSignal(conversationId, (signal) => {
      if (signal.type === 'interrupt') interrupt.abort();
      else history.deliver(signal.event);
    });
    const run = new FencedRun(tenantId, conversationId, hold, this.conversations, this.log, this.recorder, this.status, this.vault, this.secretLookupHosts, history);
    try {
      // The run's span is the parent of its LLM calls' and tool calls' spans.
      await inSpan('run', { 'berth.tenant_id': tenantId, 'berth.conversation_id': conversationId }, () => this.loop(run, AbortSignal.any([interrupt.signal, hold.lost]), hold.stopping));
    } catch (err) {
      // The run is another worker's now (or will be): nothing of this loop may reach the log.
      if (!(err instanceof RunFenceLost) && !run.lost) throw err;
      runLog.warn(`run of ${conversationId} stopped: ${hold.lost.aborted ? (hold.lost.reason as Error)?.message : (err as Error).message}`);
    } finally {
      unsubscribe();
      await this.status.broadcastFullState(tenantId, conversationId);
    }
  }

  /** The run's conversation, seen through the tenant of the queued run. */
  private load(tenantId: string, id: string): Promise<ConversationRunRow | null> {
    return this.conversations.findForRun(tenantScope(tenantId), id);
  }

  private async loop(run: FencedRun, interrupted: AbortSignal, stopping: AbortSignal): Promise<void> {
    const { tenantId, id } = run;
    let row = await this.load(tenantId, id);
    if (!row || row.executionStatus !== 'running') return;
    run.secrets.use(row.secrets);
    const agent = this.vault.openAgent(row.agent as Json);
    let llm = agent.llm as LlmConfig;
    let client = createClient(llm);
    // The LLM as stored (its key sealed): a step opens it again only when switch_llm changed it.
    let storedLlm = JSON.stringify((row.agent as Json).llm);
    const tools = await this.preparer.agentTools(row);
    const byName = new Map(tools.map((t) => [t.name, t]));
    const condenser = condenserFor(agent.condenser);
    for (const event of await this.log.all(id)) run.history.add(event);
    // A run with no message before it (POST …/run on a new conversation) makes the agent ready itself.
    await this.preparer.ensure(row, (event) => run.record(event), (agent) => run.update({ agent: agent as Prisma.InputJsonValue }));
    await this.resolveUnansweredActions(run, row, byName, interrupted);

    let iterations = 0;
    for (;;) {
      row = await this.load(tenantId, id);
      await run.check();
      if (row) run.secrets.use(row.secrets);
      // switch_llm / switch_profile take effect at the next step.
      const stored = row && JSON.stringify((row.agent as Json).llm);
      if (row && stored !== storedLlm) {
        storedLlm = stored!;
        llm = this.vault.openAgent(row.agent as Json).llm as LlmConfig;
        client = createClient(llm);
      }
      // Pause (or a deletion) takes effect between steps, and so does the worker's stop (the run stays running for the next worker).
      if (!row || row.executionStatus !== 'running' || interrupted.aborted || stopping.aborted) return;
      if (iterations >= row.maxIterations) {
        await this.fail(run, 'MaxIterationsReached', `Agent reached the maximum number of iterations (${row.maxIterations}).`, {
          kind: 'agent_action',
          retryable: true,
          user_action: 'retry',
        });
        return;
      }
      // A user message that arrives after this point is read by the next step (or restarts the run).
      const seenUserMessage = row.lastUserMessageId;
      await this.takeUserMessages(run, seenUserMessage);
      if (row.stuckDetection && run.history.isStuck()) {
        await run.transition('stuck');
        return;
      }
      if (condenser) {
        const outcome = await this.condense(run, condenser, interrupted);
        if (outcome === 'ended') return;
        if (outcome === 'condensed') {
          iterations++;
          continue;
        }
      }

      let reply: LlmReply;
      const stream = llm.stream ? await this.openStream(run) : null;
      try {
        reply = await complete(client, llm, run.history.messages(), tools.map((t) => t.definition), interrupted, stream ? (chunk) => stream.feed(chunk) : undefined);
      } catch (err) {
        stream?.close(interrupted.aborted ? 'cancelled' : classifyLlmError(err).code);
        await run.check();
        if (interrupted.aborted) return;
        // As the SDK: a condenser that takes requests gets one, and the next step condenses.
        if (condenser?.handlesRequests && isContextWindowExceeded(err)) {
          runLog.warn(`LLM context window of ${id} exceeded: condensation requested`);
          await run.record(condensationRequestEvent());
          continue;
        }
        const { code, detail, classification } = classifyLlmError(err);
        runLog.warn(`LLM call of ${id} failed: ${code}: ${detail}`);
        await this.fail(run, code, detail, classification);
        return;
      }
      iterations++;
      await this.recordUsage(run, llm, reply);

      // The step's first durable event takes the stream's id: a session-socket client closes the slot on it.
      const streamedId = stream?.claim() ?? null;
      if (!reply.toolCalls.length) {
        await run.record({
          ...messageEvent('assistant', 'agent', llmText(await run.secrets.mask(reply.content)) as never),
          ...(streamedId ? { id: streamedId } : {}),
          llm_response_id: reply.responseId,
        });
        if (await this.finishAndCheckRestart(run, seenUserMessage)) iterations = 0;
        else return;
        continue;
      }

      const actions = await this.recordActions(run, reply, byName, row.securityAnalyzer as Json | null, streamedId);
      const analysis = securityAnalysisEvent(row.confirmationPolicy as Json, row.securityAnalyzer as Json | null, actions);
      if (analysis) await run.record(analysis);
      if (requiresConfirmation(row.confirmationPolicy as Json, row.securityAnalyzer as Json | null, actions)) {
        const state = { ...(row.state as Json), awaiting_confirmation: actions.map((a) => a.event.id) };
        await run.transition('await_confirmation', { state });
        return;
      }
      let finished = false;
      for (const action of actions) {
        if (interrupted.aborted) return;
        finished = (await this.execute(run, row, action.event, action.tool, interrupted)) || finished;
      }
      if (finished) {
        if (await this.finishAndCheckRestart(run, seenUserMessage)) iterations = 0;
        else return;
      }
    }
  }

  /** The step's stream slot, anchored after the last stored event; its frames and deltas go to both sockets. */
  private async openStream(run: FencedRun): Promise<StreamSlot> {
    // The maskers hide the values resolved when they are made: every secret is resolved first.
    await run.secrets.resolveAll();
    const lastSeq = await this.log.lastSeq(run.id);
    return new StreamSlot(lastSeq > 0 ? lastSeq - 1 : null, () => run.secrets.streamMask(), {
      progress: (frame) => void this.recorder.broadcastProgress(run.id, frame).catch(() => undefined),
      delta: (event) => void this.recorder.broadcast(run.id, event).catch(() => undefined),
    });
  }

  /**
   * Takes in the user messages and condensation requests gateways sent since the last step. A
   * message the row names but no signal brought (the bus lost it) is read by its id.
   */
  private async takeUserMessages(run: FencedRun, lastUserMessageId: string | null): Promise<void> {
    if (lastUserMessageId && !run.history.knows(lastUserMessageId)) {
      const stored = await this.log.get(run.id, lastUserMessageId);
      if (stored) run.history.deliver(stored.event);
    }
    run.history.takeDelivered();
  }

  /**
   * The condenser's turn, as the SDK's agent takes it before asking its LLM: `condensed` when it
   * recorded a Condensation (the step ends there; the next one reads the condensed view), `ended`
   * when the run stops (interrupted, or a condensation it must make and cannot: the run errs as on
   * an LLM failure).
   */
  private async condense(run: FencedRun, condenser: Condenser, interrupted: AbortSignal): Promise<'condensed' | 'unchanged' | 'ended'> {
    let condensed;
    try {
      condensed = await condenser.condense(run.history.view, interrupted);
    } catch (err) {
      await run.check();
      if (interrupted.aborted) return 'ended';
      const { code, detail, classification } = classifyLlmError(err);
      runLog.warn(`condensation of ${run.id} failed: ${code}: ${detail}`);
      await this.fail(run, code, detail, classification);
      return 'ended';
    }
    if (!condensed) return 'unchanged';
    await run.record(condensed.condensation);
    await this.recordUsage(run, condensed.llm, condensed.reply);
    return 'condensed';
  }

  /**
   * Marks the run finished; true when the run must go on: a user message came in during the last
   * step (sent while running, so nothing restarted it), or a new run was started meanwhile.
   */
  private async finishAndCheckRestart(run: FencedRun, seenUserMessage: string | null): Promise<boolean> {
    await run.transition('finish');
    const row = await this.load(run.tenantId, run.id);
    if (row?.executionStatus === 'running') return true;
    if (row && row.lastUserMessageId !== seenUserMessage) {
      return run.transition('resume');
    }
    return false;
  }

  private async fail(run: FencedRun, code: string, detail: string, classification: Json): Promise<void> {
    await run.record({
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'environment',
      code,
      detail,
      classification: { ...classification, error_id: newUuid().replace(/-/g, '') },
      kind: 'ConversationErrorEvent',
    });
    await run.transition('fail');
  }

  /**
   * Actions without an answer: the ones accepted after a confirmation pause run now; any other was
   * cut short by a crash and gets an AgentErrorEvent saying so, then the loop goes on.
   */
  private async resolveUnansweredActions(run: FencedRun, row: ConversationRunRow, byName: Map<string, AgentTool>, interrupted: AbortSignal): Promise<void> {
    const unanswered = unmatchedActions(await this.log.latest(row.id, 500, ['ActionEvent', ...ACTION_ANSWER_KINDS]));
    const awaiting = new Set<string>((row.state as Json).awaiting_confirmation ?? []);
    for (const action of unanswered) {
      const tool = byName.get(String(action.tool_name));
      if (awaiting.has(action.id) && tool && !interrupted.aborted) await this.execute(run, row, action, tool, interrupted);
      else await this.agentError(run, action, RESTARTED);
    }
    if (awaiting.size) {
      const { awaiting_confirmation: _done, ...state } = row.state as Json;
      await run.update({ state });
    }
  }

  private async recordUsage(run: FencedRun, llm: LlmConfig, reply: LlmReply): Promise<void> {
    const snapshot = await run.addUsage(llmCallUsage(llm, reply));
    if (snapshot) await run.record(stateUpdateEvent('stats', snapshot));
  }

  /** One ActionEvent per tool call; calls that cannot become actions are answered with an AgentErrorEvent. */
  private async recordActions(run: FencedRun, reply: LlmReply, byName: Map<string, AgentTool>, analyzer: Json | null, firstId: string | null): Promise<{ event: OHEvent; tool: AgentTool }[]> {
    const out: { event: OHEvent; tool: AgentTool }[] = [];
    let first = true;
    for (const call of reply.toolCalls) {
      const tool = byName.get(call.name);
      let args: unknown;
      let problem: string | null = null;
      try {
        args = JSON.parse(call.arguments || '{}');
      } catch (err) {
        problem = `Error parsing tool call arguments as JSON: ${(err as Error).message}`;
      }
      const risk = !problem && tool ? extractSecurityRisk(args, tool, analyzer) : null;
      if (risk && 'error' in risk) problem = risk.error;
      const parsed = !problem && tool && risk ? tool.parse(risk.args) : null;
      if (!tool) problem = `Tool '${call.name}' not found. Available: ${[...byName.keys()].join(', ')}`;
      else if (parsed && 'error' in parsed) problem = parsed.error;
      const event: OHEvent = {
        id: (first && firstId) || newUuid(),
        timestamp: naiveTimestamp(),
        source: 'agent',
        // No text in the reply is no thought (the SDK's empty list), not an empty text.
        thought: first && reply.content ? llmText(reply.content) : [],
        ...(first && reply.reasoning ? { reasoning_content: reply.reasoning } : {}),
        thinking_blocks: [],
        // Stored without nulls, as the SDK stores events (exclude_none); the executor parses the defaults back.
        ...(parsed && 'action' in parsed && tool ? { action: omitNulls({ ...parsed.action, kind: tool.actionKind }) } : {}),
        tool_name: call.name,
        tool_call_id: call.id,
        tool_call: { id: call.id, name: call.name, arguments: call.arguments, origin: 'completion' },
        llm_response_id: reply.responseId,
        security_risk: risk && 'risk' in risk ? risk.risk : 'UNKNOWN',
        ...(typeof (args as Json)?.summary === 'string' ? { summary: (args as Json).summary } : {}),
        kind: 'ActionEvent',
      };
      first = false;
      await run.record(event);
      if (problem || !tool) await this.agentError(run, event, problem ?? 'invalid tool call');
      else out.push({ event, tool });
    }
    return out;
  }

  /** Runs one action and records its observation (or the error), in a `tool.call` span; true when its tool ends the run. */
  private execute(run: FencedRun, row: ConversationRunRow, action: OHEvent, tool: AgentTool, interrupted: AbortSignal): Promise<boolean> {
    const attributes = { 'gen_ai.tool.name': tool.name, 'gen_ai.tool.call.id': String(action.tool_call_id ?? '') };
    return inSpan('tool.call', attributes, () => this.executeAction(run, row, action, tool, interrupted));
  }

  private async executeAction(run: FencedRun, row: ConversationRunRow, action: OHEvent, tool: AgentTool, interrupted: AbortSignal): Promise<boolean> {
    const fields = { ...((action.action as Json) ?? {}) };
    delete fields.kind;
    let observation: Json;
    if (tool.answer) observation = tool.answer(fields);
    else {
      // A sandbox command is not undone by a failed write: it runs only while the run is still ours.
      await run.check(true);
      try {
        const env = await this.secretsFor(run, tool, fields);
        observation = tool.execute ? await tool.execute(fields, interrupted) : await this.runtime.execute(row, tool.name, fields, interrupted, env);
      } catch (err) {
        await run.check();
        if (interrupted.aborted) {
          await this.agentError(run, action, 'The action was interrupted by the user.');
          return false;
        }
        await this.agentError(run, action, err instanceof ToolFailure ? err.message : `Tool execution failed: ${(err as Error).message}`);
        return false;
      }
    }
    // Every tool's output is masked, whichever field carries it (the SDK's mask_secrets_in_model).
    observation = await run.secrets.mask(observation);
    await run.record({
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'environment',
      tool_name: tool.name,
      tool_call_id: action.tool_call_id,
      action_id: action.id,
      observation,
      extended_content: [],
      kind: 'ObservationEvent',
    });
    return tool.endsRun === true;
  }

  /**
   * The secrets a terminal command names, read from the conversation as it is now (secrets set
   * since the step began count); none for input to a running command or a wait for output.
   */
  private async secretsFor(run: FencedRun, tool: AgentTool, fields: Json): Promise<Record<string, string>> {
    if (tool.name !== 'terminal' || fields.is_input === true || typeof fields.command !== 'string' || !fields.command.trim()) return {};
    const current = await this.load(run.tenantId, run.id);
    if (current) run.secrets.use(current.secrets);
    return run.secrets.envFor(fields.command);
  }

  private async agentError(run: FencedRun, action: OHEvent, error: string): Promise<void> {
    error = await run.secrets.mask(error);
    await run.record({
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'agent',
      tool_name: action.tool_name,
      tool_call_id: action.tool_call_id,
      error,
      kind: 'AgentErrorEvent',
    });
  }
}

