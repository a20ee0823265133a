import { BadGatewayException, BadRequestException, ConflictException, ForbiddenException, HttpException, Inject, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { AgentPreparer, agentLlms, initialStats, userMessage } from '@berth/agent';
import type { ConversationForAgent } from '@berth/agent';
import { EventRecorder } from '@berth/bus';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import {
  AgentSchema,
  ConversationRuntimeInfo,
  ConversationSearchQuery,
  EXECUTOR_TOOL_NAMES,
  toValidationIssues,
  ExecutionStatus,
  finalResponseText,
  initialStatus,
  newUuid,
  OHEvent,
  parseUuid,
  stateUpdateEvent,
  StartConversationRequest,
  uuidHex,
} from '@berth/contracts';
import { SecretDecryptError, SecretInput, SecretVault, StoredSecret } from '@berth/crypto';
import { ConversationRepository, ConversationRow, EventLog, Prisma, SandboxRepository, tenantScope } from '@berth/persistence';
import type { SandboxRow } from '@berth/persistence';
import { validationError, ValidationFailed } from '../common/zod-validation.pipe';
import type { Principal } from '../common/tenant.decorator';
import { ExecutorClient, SandboxManager, SandboxNetworkRefused, SandboxNotFound } from '@berth/sandbox';
import type { CreatedSandbox } from '@berth/sandbox';
import { WebhookDispatcher } from '@berth/webhooks';
import { ServerInfoService } from '../health/server-info.service';
import { WorkspaceRoutingService } from '../workspace/workspace-routing.service';
import { SETTINGS_API_KEY, SettingsService } from '../settings/settings.service';
import { ConversationOptions, toConversationInfo, withAgentDefaults } from '@berth/persistence';
import { alreadyRunning, conversationNotFound } from './conversation-errors';
import { ConversationCounter } from './conversation-counter.service';
import { QuotaService } from '../quotas/quota.service';
import { RunControlService } from './run-control.service';
import { ConversationTitles } from '../conversation-ops/conversation-titles.service';

type Json = Record<string, unknown>;

const ROW_NOT_UNIQUE = 'P2002';
/** How long GET …/runtime waits for a running sandbox's executor to answer its health check. */
const EXECUTOR_PROBE_MS = 3000;

@Injectable()
export class ConversationsService {
  private readonly logger = new Logger('Conversations');

  constructor(
    private readonly rows: ConversationRepository,
    private readonly sandboxRows: SandboxRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly runs: RunControlService,
    private readonly vault: SecretVault,
    private readonly serverInfo: ServerInfoService,
    private readonly counter: ConversationCounter,
    private readonly webhooks: WebhookDispatcher,
    private readonly routing: WorkspaceRoutingService,
    private readonly settings: SettingsService,
    private readonly sandboxes: SandboxManager,
    private readonly quotas: QuotaService,
    private readonly preparer: AgentPreparer,
    private readonly titles: ConversationTitles,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  /**
   * ConversationInfo. `runtime_info` is given where OpenHands fills it (GET one, search, batch) and
   * null in the answers of POST /api/conversations (OpenHands' too); `sandbox` is the conversation's.
   */
  info(row: ConversationRow, includeSkills = false, sandbox?: SandboxRow | null): Json {
    const info = toConversationInfo(row, this.config.conversationsPath, includeSkills);
    return { ...info, runtime_info: sandbox === undefined ? null : this.runtimeInfo(sandbox) };
  }

  /** ConversationInfo of rows, with their runtimes (their sandboxes read in one query). */
  private async infos(p: Principal, rows: ConversationRow[], includeSkills = false): Promise<Json[]> {
    const ids = [...new Set(rows.map((r) => r.sandboxId).filter((id): id is string => id !== null))];
    const sandboxes = new Map((await this.sandboxRows.findMany(tenantScope(p.tenantId), ids)).map((s) => [s.id, s]));
    return rows.map((row) => this.info(row, includeSkills, row.sandboxId ? (sandboxes.get(row.sandboxId) ?? null) : null));
  }

  /** GET /api/conversations/{id}: the caller's conversation with its runtime. */
  async get(p: Principal, id: string, includeSkills = false): Promise<Json> {
    return (await this.infos(p, [await this.require(p, id)], includeSkills))[0];
  }

  /**
   * OpenHands' ConversationRuntimeInfo from the conversation's sandbox (null: none yet, one is made
   * at its first use). Only a running sandbox is `available`; a stopped, paused or lost one is
   * `missing` and starts again at the next call that needs it (`can_resume`), as does one in error
   * (its status reason, such as ImagePullBackOff, in the error's message).
   */
  runtimeInfo(sandbox: SandboxRow | null, unreachable?: string): ConversationRuntimeInfo {
    const status = sandbox?.status ?? null;
    const base = {
      can_resume: true,
      sandbox_id: sandbox?.id ?? null,
      sandbox_kind: (sandbox?.kind as ConversationRuntimeInfo['sandbox_kind']) ?? null,
      sandbox_status: status,
      driver: sandbox?.driver ?? this.sandboxes.driverKind,
    };
    if (status === 'error' || unreachable) {
      return {
        ...base,
        runtime_status: 'error',
        runtime_error: unreachable
          ? { code: 'sandbox_unreachable', message: `The sandbox's executor does not answer: ${unreachable}` }
          : { code: 'sandbox_error', message: `The sandbox's executor failed${sandbox?.statusReason ? ` (${sandbox.statusReason})` : ''}; the next call that needs it starts it again.` },
      };
    }
    return { ...base, runtime_status: status === 'running' ? 'available' : status === 'starting' ? 'starting' : 'missing', runtime_error: null };
  }

  /**
   * GET /api/conversations/{id}/runtime: the runtime as its sandbox row says, and a running
   * sandbox's executor asked whether it answers.
   */
  async runtime(p: Principal, id: string): Promise<ConversationRuntimeInfo> {
    const row = await this.require(p, id);
    const sandbox = row.sandboxId ? await this.sandboxRows.find(tenantScope(p.tenantId), row.sandboxId) : null;
    return this.runtimeInfo(sandbox, sandbox ? await this.unreachable(sandbox) : undefined);
  }

  /** Why a sandbox marked running does not answer, or undefined (it answers, or is not marked running). */
  private async unreachable(sandbox: SandboxRow): Promise<string | undefined> {
    const handle = sandbox.status === 'running' ? this.sandboxes.handleOf(sandbox) : null;
    if (!handle) return undefined;
    try {
      await new ExecutorClient(handle).health({ timeoutMs: EXECUTOR_PROBE_MS });
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /**
   * POST /api/conversations/{id}/runtime/reprovision: a fresh runtime. The conversation's own
   * sandbox gets a new executor (the old one and every process of it ends; the files stay, as
   * OpenHands keeps the workspace of a container it re-creates); a sandbox it shares (the tenant's
   * home, one it joined) is started if it does not run, never cut short under the others using it.
   * A conversation without a sandbox yet gets one.
   */
  async reprovision(p: Principal, id: string): Promise<ConversationRuntimeInfo> {
    const row = await this.require(p, id);
    const owner = tenantScope(p.tenantId);
    try {
      const sandboxId = await this.sandboxes.sandboxIdFor(owner, row);
      const sandbox = await this.sandboxRows.find(owner, sandboxId);
      if (!sandbox) throw new SandboxNotFound(sandboxId);
      if (sandbox.kind === 'conversation' && sandbox.status !== 'stopped' && sandbox.status !== 'paused') await this.sandboxes.pause(owner, sandbox, 'stopped');
      await this.quotas.checkSandboxStart(p.tenantId, sandboxId);
      await this.sandboxes.ensureRunning(owner, sandboxId);
      this.serverInfo.touch();
      const fresh = await this.sandboxRows.find(owner, sandboxId);
      return this.runtimeInfo(fresh, fresh ? await this.unreachable(fresh) : undefined);
    } catch (err) {
      if (err instanceof HttpException) throw err;
      if (err instanceof SandboxNotFound) throw conversationNotFound(id);
      if (err instanceof SandboxNetworkRefused) throw new ForbiddenException({ detail: err.message });
      this.logger.error(`conversation ${id}: its sandbox could not be reprovisioned: ${(err as Error).message}`);
      throw new BadGatewayException({ detail: `Could not start the conversation's sandbox: ${(err as Error).message}` });
    }
  }

  /**
   * The caller's conversation, or null: another tenant's conversation does not exist for the caller
   * (under `/sandboxes/{id}`, only that sandbox's are seen).
   */
  find(p: Principal, id: string): Promise<ConversationRow | null> {
    return this.rows.find(p, id);
  }

  async require(p: Principal, id: string, notFound = conversationNotFound): Promise<ConversationRow> {
    const row = await this.find(p, id);
    if (!row) throw notFound(id);
    return row;
  }

  /**
   * POST /api/conversations: 201 with a new conversation, 200 with the existing one (its initial
   * message not sent again) when `conversation_id` is already one of the caller's — a retried create
   * whose answer was lost, or two racing — as OpenHands' `idempotent_conversation_create_v1`. An id
   * another tenant uses is a 409 that says nothing of it (no conversation can be made under it).
   *
   * With an initial message the agent is made ready first, as OpenHands' `send_message` does: the
   * conversation's sandbox starts and its SystemPromptEvent is written before the message, in the
   * same transaction as the row.
   */
  async create(p: Principal, req: StartConversationRequest): Promise<{ created: boolean; info: Json }> {
    const id = req.conversation_id ? (parseUuid(req.conversation_id) as string) : newUuid();
    if (req.conversation_id) {
      const existing = await this.find(p, id);
      if (existing) return { created: false, info: this.info(existing) };
    }
    const launch = req.agent_profile_id ? await this.settings.launchAgentProfile(p, req.agent_profile_id, req.agent_launch_additions) : null;
    if (req.parent_conversation_id) await this.checkParent(p, parseUuid(req.parent_conversation_id) as string, req.workspace.working_dir);
    let sandboxId = await this.sandboxFor(p, req.sandbox_id, req.workspace.working_dir);
    await this.quotas.admitConversation(p.tenantId, { ownSandbox: sandboxId === null, run: !!req.initial_message });

    // From stored settings: a key no configured key opens is the server's 409, not the client's 400.
    const fromSettings = req.agent || launch ? null : await this.agentFromSettings(p, req.agent_settings as Json);
    let agent: Json;
    let secrets: Record<string, StoredSecret>;
    try {
      agent = req.agent
        ? this.vault.sealAgent(withAgentDefaults(req.agent as Json), req.secrets_encrypted)
        : this.vault.sealAgent(withAgentDefaults(launch ? launch.agent : (fromSettings as Json)));
      // A profile's secret_refs keep the agent to the secrets it names.
      const allowed = launch?.allowedSecrets;
      const given = Object.entries(req.secrets as Record<string, SecretInput>).filter(([name]) => !allowed || allowed.includes(name));
      secrets = this.vault.sealSecrets(Object.fromEntries(given), req.secrets_encrypted);
    } catch (err) {
      if (err instanceof SecretDecryptError) throw new BadRequestException({ detail: `secrets_encrypted is set but ${err.message}` });
      throw err;
    }

    const options: ConversationOptions = {
      client_tools: req.client_tools,
      hook_config: req.hook_config ?? null,
      parent_conversation_id: req.parent_conversation_id ? parseUuid(req.parent_conversation_id) : null,
      worktree: req.worktree,
      autotitle: req.autotitle,
      tool_module_qualnames: req.tool_module_qualnames,
      agent_definitions: req.agent_definitions,
      plugins: req.plugins ?? null,
      agent_launch_additions: req.agent_launch_additions ?? null,
      user_id: req.user_id ?? null,
      observability_metadata: req.observability_metadata,
      observability_tags: req.observability_tags,
      observability_span_name: req.observability_span_name,
      title_llm_profile: req.title_llm_profile ?? null,
      prompt: req.prompt ?? null,
      launched_agent_profile: launch?.profile ?? null,
    };
    // The sandbox made for this conversation here (removed again if the conversation is not made).
    let madeSandbox: string | null = null;
    let systemPrompt: OHEvent | null = null;
    let agentUpdate: OHEvent | null = null;
    let initial: OHEvent | null = null;
    let state: Json = {};
    if (req.initial_message) {
      let created: CreatedSandbox | undefined;
      if (sandboxId === null) {
        created = await this.sandboxes.make(tenantScope(p.tenantId), {}, 'conversation');
        sandboxId = madeSandbox = created.id;
      }
      const ready = await this.systemPromptFor({ id, tenantId: p.tenantId, sandboxId, agent: agent as Prisma.JsonValue, options: options as Prisma.JsonValue, workspace: req.workspace as Prisma.JsonValue, secrets: secrets as Prisma.JsonValue }, created);
      systemPrompt = ready?.event ?? null;
      agentUpdate = ready?.agentUpdate ?? null;
      agent = ready?.agent ?? agent;
      const message = userMessage(agent, state, req.initial_message.content, req.initial_message.sender);
      initial = message.event;
      if (message.activated.length) state = { activated_knowledge_skills: message.activated };
    }
    const now = new Date();
    const initialEvents: OHEvent[] = initial
      ? [...(agentUpdate ? [agentUpdate] : []), ...(systemPrompt ? [systemPrompt] : []), initial, stateUpdateEvent('last_user_message_id', initial.id), stateUpdateEvent('execution_status', 'running')]
      : [];

    let stored: { seq: number; event: OHEvent }[] = [];
    try {
      // The conversation and its first events are written together or not at all.
      stored = await this.rows.create(
        p,
        {
          id,
          agent: agent as Prisma.InputJsonValue,
          workspace: req.workspace as Prisma.InputJsonValue,
          confirmationPolicy: req.confirmation_policy as Prisma.InputJsonValue,
          securityAnalyzer: (req.security_analyzer ?? Prisma.DbNull) as Prisma.InputJsonValue,
          maxIterations: req.max_iterations,
          stuckDetection: req.stuck_detection,
          secrets: secrets as Prisma.InputJsonValue,
          tags: req.tags,
          options: options as Prisma.InputJsonValue,
          state: state as Prisma.InputJsonValue,
          // The agent made ready with the first message lists its LLM at once, as in OpenHands.
          ...(systemPrompt && agent.llm ? { stats: initialStats(agentLlms(agent as Json)) as Prisma.InputJsonValue } : {}),
          sandboxId,
          executionStatus: initialStatus(Boolean(initial)),
          // Written in the background by an LLM (ConversationTitles), as OpenHands' AutoTitleSubscriber.
          title: null,
          lastUserMessageId: initial?.id ?? null,
          createdAt: now,
          updatedAt: now,
        },
        async (tx) => {
          const out: { seq: number; event: OHEvent }[] = [];
          for (const event of initialEvents) out.push({ seq: await this.log.append(id, event, tx), event });
          return out;
        },
      );
    } catch (err) {
      if (madeSandbox) await this.removeSandbox(p, madeSandbox);
      if ((err as { code?: string }).code === ROW_NOT_UNIQUE) {
        // Made meanwhile by the caller (a retry racing its first try), or the id is another tenant's.
        const existing = await this.find(p, id);
        if (existing) return { created: false, info: this.info(existing) };
        throw new ConflictException({ detail: `Conversation id already in use: ${id}` });
      }
      throw err;
    }
    await this.counter.changed(p.tenantId);
    await this.recorder.publish(id, stored);
    // The committed `running` row is the run's durable intent: if Redis fails here or before, the
    // workers' reconciler queues the run (no running conversation is left that never runs).
    if (initial) {
      this.serverInfo.touch();
      await this.runs.enqueue(p.tenantId, id);
    }
    await this.webhooks.conversationChanged(p.tenantId, id);
    const row = await this.require(p, id);
    if (initial) this.titles.afterUserMessage(row, req.initial_message!.content);
    return { created: true, info: this.info(row) };
  }

  /**
   * Before a message is stored (POST …/events, the socket): the agent is made ready unless it is,
   * so the SystemPromptEvent comes first, as in OpenHands.
   */
  async prepareAgent(row: ConversationRow): Promise<ConversationRow> {
    if (await this.preparer.hasSystemPrompt(row.id)) return row;
    const ready = await this.systemPromptFor(row);
    if (!ready) return row;
    try {
      if (ready.agentUpdate) await this.recorder.record(row.id, ready.agentUpdate);
      await this.recorder.record(row.id, ready.event);
    } catch (err) {
      // Written meanwhile by a worker starting a run, or by a message sent at the same time.
      if (!(await this.preparer.hasSystemPrompt(row.id))) throw err;
      return row;
    }
    const change: Prisma.ConversationUpdateManyMutationInput = {};
    // The project skills found on the way belong to the agent from now on (its knowledge skills trigger on messages).
    if (ready.agent !== row.agent) change.agent = ready.agent as Prisma.InputJsonValue;
    // The agent made ready lists its LLMs at once, as in OpenHands; with no run going, no LLM call has counted yet.
    const llm = (row.agent as Json | null)?.llm;
    const stats = row.stats as Json | null;
    if (llm && row.executionStatus !== 'running' && Object.keys(stats?.usage_to_metrics ?? {}).length === 0) {
      change.stats = initialStats(agentLlms(ready.agent)) as Prisma.InputJsonValue;
    }
    if (Object.keys(change).length) await this.rows.update(tenantScope(row.tenantId), row.id, change);
    return { ...row, agent: (change.agent as Prisma.JsonValue | undefined) ?? row.agent };
  }

  /**
   * The SystemPromptEvent, or null when the sandbox cannot start now (it is then written by the
   * run, which meets the same problem and reports it as it always did). `created`: the sandbox was
   * just made here, and starts with its row and policy in hand (making the agent ready then finds it running).
   */
  private async systemPromptFor(conversation: ConversationForAgent, created?: CreatedSandbox): Promise<{ event: OHEvent; agent: Json; agentUpdate: OHEvent | null } | null> {
    try {
      if (created) await this.sandboxes.ensureRunning(tenantScope(conversation.tenantId), created.id, { created });
      return await this.preparer.readyAgent(conversation);
    } catch (err) {
      this.logger.warn(`conversation ${conversation.id}: its sandbox did not start before the first message (the run makes the agent ready): ${(err as Error).message}`);
      return null;
    }
  }

  private async removeSandbox(p: Principal, sandboxId: string): Promise<void> {
    const row = await this.sandboxRows.find(tenantScope(p.tenantId), sandboxId);
    if (row) await this.sandboxes.destroy(tenantScope(p.tenantId), row).catch((err: Error) => this.logger.warn(`could not remove sandbox ${sandboxId}: ${err.message}`));
  }

  /**
   * The Agent that `agent_settings` (as Agent Canvas sends them) describe: its llm over the tenant's
   * stored one, its tools (all sandbox tools when none), agent_context and mcp_config. The api_key
   * may come back as this server's token from GET /api/settings or as the mask; both stand for the
   * stored key.
   */
  private async agentFromSettings(p: Principal, settings: Json): Promise<Json> {
    if (settings.agent_kind !== undefined && settings.agent_kind !== 'openhands') {
      throw validationError('body', ['agent_settings', 'agent_kind'], "Berth runs the OpenHands agent only (agent_kind 'openhands')", 'value_error', settings.agent_kind);
    }
    const stored = (await this.settings.get(p, 'encrypted')).agent_settings;
    const sent = (settings.llm ?? {}) as Json;
    const candidate = {
      kind: 'Agent',
      llm: { ...stored.llm, ...sent, api_key: sent.api_key ?? stored.llm.api_key },
      tools: settings.tools ?? stored.tools ?? EXECUTOR_TOOL_NAMES.map((name) => ({ name, params: {} })),
      ...(settings.agent_context !== undefined ? { agent_context: settings.agent_context } : {}),
      mcp_config: settings.mcp_config ?? {},
    };
    const parsed = AgentSchema.safeParse(candidate);
    if (!parsed.success) {
      throw new ValidationFailed(toValidationIssues(parsed.error, 'body', candidate).map((i) => ({ ...i, loc: ['body', 'agent_settings', ...i.loc.slice(1)] })));
    }
    const agent = parsed.data as Json & { llm: Json };
    const what = sent.api_key === undefined ? SETTINGS_API_KEY : 'agent_settings.llm.api_key';
    if (typeof agent.llm.api_key === 'string') agent.llm.api_key = await this.settings.revealSecret(p, agent.llm.api_key, what);
    return agent;
  }

  /**
   * The sandbox a new conversation joins: the one of the `/sandboxes/{id}` prefix, or `sandbox_id`, or
   * the tenant's home when the working dir lies under it; null = a sandbox of its own, made on first use.
   */
  private async sandboxFor(p: Principal, requested: string | null | undefined, workingDir: string): Promise<string | null> {
    const id = p.sandboxId ?? (requested ? parseUuid(requested) : null);
    if (!id) return this.routing.homeContaining(p, workingDir);
    if (p.sandboxId && requested && parseUuid(requested) !== p.sandboxId) {
      throw validationError('body', ['sandbox_id'], `sandbox_id differs from the sandbox of this URL (${p.sandboxId})`);
    }
    if (!(await this.sandboxRows.exists(p, id))) throw new NotFoundException({ detail: `Sandbox not found: ${id}` });
    return id;
  }

  private async checkParent(p: Principal, parentId: string, workingDir: string): Promise<void> {
    const parent = await this.find(p, parentId);
    if (!parent) throw validationError('body', ['parent_conversation_id'], `Parent conversation not found: ${parentId}`);
    if ((parent.workspace as { working_dir?: string }).working_dir !== workingDir) {
      throw validationError('body', ['parent_conversation_id'], 'A sub-conversation must share its parent\'s workspace');
    }
  }

  async search(p: Principal, q: ConversationSearchQuery): Promise<{ items: Json[]; next_page_id: string | null }> {
    const field = q.sort_order.startsWith('UPDATED') ? 'updatedAt' : 'createdAt';
    const dir = q.sort_order.endsWith('_DESC') ? 'desc' : 'asc';
    // Keyset paging on (sort column, id): stable under inserts, no OFFSET scans.
    const rows = await this.rows.page(p, { status: q.status, field, dir, startId: q.page_id ? parseUuid(q.page_id) : null, limit: q.limit });
    const more = rows.length > q.limit;
    return {
      items: await this.infos(p, rows.slice(0, q.limit), q.include_skills),
      next_page_id: more ? uuidHex(rows[q.limit].id) : null,
    };
  }

  count(p: Principal, status?: ExecutionStatus): Promise<number> {
    return this.counter.count(p.tenantId, status, p.sandboxId);
  }

  async batch(p: Principal, ids: string[], includeSkills = false): Promise<(Json | null)[]> {
    const parsed = ids.map((i) => parseUuid(i) as string);
    const rows = await this.rows.findMany(p, parsed);
    const infos = await this.infos(p, rows, includeSkills);
    const byId = new Map(rows.map((r, i) => [r.id, infos[i]]));
    return parsed.map((id) => byId.get(id) ?? null);
  }

  async update(p: Principal, id: string, patch: { title?: string; tags?: Record<string, string> }): Promise<void> {
    const data: Prisma.ConversationUpdateManyMutationInput = { updatedAt: new Date() };
    if (patch.title !== undefined) data.title = patch.title;
    if (patch.tags !== undefined) data.tags = patch.tags;
    if (!(await this.rows.update(p, id, data))) throw conversationNotFound(id);
    await this.webhooks.conversationChanged(p.tenantId, id);
  }

  /** Deletes the conversation and its events; the sandbox's files are kept (as OpenHands). */
  async remove(p: Principal, id: string): Promise<void> {
    const row = await this.rows.remove(p, id);
    if (!row) throw conversationNotFound(id);
    await this.counter.changed(p.tenantId);
    await this.webhooks.conversationDeleted(row);
    if (row.sandboxId) await this.stopOwnSandbox(p, row.sandboxId);
  }

  /**
   * A sandbox made for a conversation serves no one once no conversation is left in it: its
   * executor stops, its files stay. The caller's own sandboxes only.
   */
  private async stopOwnSandbox(p: Principal, sandboxId: string): Promise<void> {
    const sandbox = await this.sandboxRows.find(p, sandboxId);
    if (sandbox?.kind !== 'conversation' || sandbox.status !== 'running') return;
    if (await this.rows.countInSandbox(p, sandboxId)) return;
    await this.sandboxes.pause(p, sandbox, 'stopped').catch((err: Error) => this.logger.warn(`could not stop sandbox ${sandboxId}: ${err.message}`));
  }

  async run(p: Principal, id: string): Promise<void> {
    await this.require(p, id);
    const result = await this.runs.start(p.tenantId, id);
    if (result === 'not_found') throw conversationNotFound(id);
    if (result === 'already_running') throw alreadyRunning();
  }

  /** Adds or replaces secrets (encrypted at rest); existing ones with other names stay. */
  async setSecrets(p: Principal, id: string, secrets: Record<string, SecretInput>): Promise<void> {
    const sealed = this.vault.sealSecrets(secrets);
    const updated = await this.rows.modify(p, id, (row) => ({ secrets: { ...(row.secrets as Record<string, StoredSecret>), ...sealed } as Prisma.InputJsonValue }));
    if (!updated) throw conversationNotFound(id);
  }

  async setConfirmationPolicy(p: Principal, id: string, policy: Json): Promise<void> {
    if (!(await this.rows.update(p, id, { confirmationPolicy: policy as Prisma.InputJsonValue }))) throw conversationNotFound(id);
    await this.recorder.record(id, stateUpdateEvent('confirmation_policy', policy));
  }

  /** The analyzer reads the risks of the next actions; the actions recorded so far keep theirs. */
  async setSecurityAnalyzer(p: Principal, id: string, analyzer: Json | null): Promise<void> {
    if (!(await this.rows.update(p, id, { securityAnalyzer: (analyzer ?? Prisma.DbNull) as Prisma.InputJsonValue }))) throw conversationNotFound(id);
    await this.recorder.record(id, stateUpdateEvent('security_analyzer', analyzer));
  }

  async finalResponse(p: Principal, id: string): Promise<string> {
    await this.require(p, id);
    return finalResponseText(await this.log.latest(id, 200, ['ActionEvent', 'MessageEvent']));
  }
}
