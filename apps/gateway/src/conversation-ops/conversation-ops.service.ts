import { BadGatewayException, ConflictException, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { AgentPreparer, llmCallUsage, askAgent, classifyLlmError, initialStats, LlmConfig } from '@berth/agent';
import { EventRecorder } from '@berth/bus';
import { ForkConversationRequest, initialStatus, LLM_SECRET_FIELDS, newUuid, OHEvent, parseUuid, SECRET_MASK, stateUpdateEvent, WorkspaceCopyState } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { ConversationOptions, ConversationRepository, ConversationRow, EventLog, Prisma, SandboxRepository, SettingsRepository, tenantScope, withAgentDefaults } from '@berth/persistence';
import { SandboxManager } from '@berth/sandbox';
import { WebhookDispatcher } from '@berth/webhooks';
import type { Principal } from '../common/tenant.decorator';
import { ConversationCounter } from '../conversations/conversation-counter.service';
import { ConversationsService } from '../conversations/conversations.service';
import { QuotaService } from '../quotas/quota.service';
import { LlmProfilesService } from '../settings/llm-profiles.service';
import { SettingsVault } from '../settings/settings-vault';

type Json = Record<string, any>;

const ROW_NOT_UNIQUE = 'P2002';
const askNotFound = () => new NotFoundException({ detail: 'Conversation not found' });

/**
 * Operations on a conversation beside its runs, as OpenHands' conversation router has them:
 * ask_agent (a side question), switch_llm / switch_profile (the LLM of the next steps) and fork (a
 * copy of its history — and, beyond OpenHands, of its sandbox's workspace files).
 */
@Injectable()
export class ConversationOpsService {
  private readonly logger = new Logger('ConversationOps');

  constructor(
    private readonly conversations: ConversationsService,
    private readonly rows: ConversationRepository,
    private readonly sandboxRows: SandboxRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly vault: SecretVault,
    private readonly preparer: AgentPreparer,
    private readonly profiles: LlmProfilesService,
    private readonly settingsRows: SettingsRepository,
    private readonly keys: SettingsVault,
    private readonly sandboxes: SandboxManager,
    private readonly quotas: QuotaService,
    private readonly counter: ConversationCounter,
    private readonly webhooks: WebhookDispatcher,
  ) {}

  /**
   * The SDK's ask_agent: the agent's LLM (as `ask-agent-llm`, counted in the stats as the SDK's
   * registry counts it) answers over the history as the agent reads it. No event, no status change.
   */
  async ask(p: Principal, id: string, question: string): Promise<string> {
    const row = await this.conversations.require(p, id, askNotFound);
    const llm = this.vault.openAgent(row.agent as Json).llm as LlmConfig;
    const tools = this.preparer.toolsFor(row).map((t) => t.definition);
    try {
      const { response, reply } = await askAgent(llm, await this.log.all(id), tools, question);
      const askLlm = { ...llm, usage_id: 'ask-agent-llm' };
      await this.rows.addUsage(p, id, llmCallUsage(askLlm, reply));
      return response;
    } catch (err) {
      const { code, detail } = classifyLlmError(err);
      const shown = llm.api_key ? detail.split(llm.api_key).join(SECRET_MASK) : detail;
      this.logger.warn(`ask_agent of ${id} failed: ${code}: ${shown}`);
      throw new BadGatewayException({ detail: `${code}: ${shown}` });
    }
  }

  /**
   * switch_llm: the posted LLM becomes the agent's (its key sealed at rest; the mask or a token
   * this server made stands for a stored key, a provider connection's key is applied), used from
   * the run's next step on. Its usage id keeps the metrics already counted under it, as the SDK's
   * registry does; a new usage id is listed with zero metrics.
   */
  async switchLlm(p: Principal, id: string, llm: Json): Promise<void> {
    const row = await this.conversations.require(p, id);
    const current = ((row.agent as Json).llm ?? {}) as Json;
    let sealed: Json = { ...llm, api_key: null };
    // Every secret field (api_key, aws_*): clear text sealed, the mask or this server's token standing for the stored value.
    for (const field of LLM_SECRET_FIELDS) {
      if (typeof llm[field] === 'string') sealed[field] = this.keys.seal(llm[field], (current[field] ?? null) as string | null, ['llm', field]);
    }
    if (typeof sealed.provider_connection_id === 'string') {
      sealed = (await this.profiles.resolve(this.settingsRows, p, sealed as never, 'LLM config')) as unknown as Json;
    }
    await this.install(p, row, sealed);
  }

  /** switch_profile: the tenant's LLM profile (as `profile:<name>`), 404 when it has none of that name. */
  async switchProfile(p: Principal, id: string, name: string): Promise<void> {
    const row = await this.conversations.require(p, id);
    const llm = (await this.profiles.runnableLlm(this.settingsRows, p, name)) as unknown as Json;
    await this.install(p, row, { ...llm, usage_id: `profile:${name}` });
  }

  /** Stores the agent with its new LLM (secrets sealed) and says so as the SDK's state does: a state update of `agent`. */
  private async install(p: Principal, row: ConversationRow, sealedLlm: Json): Promise<void> {
    const { provider_connection_id: _link, ...llm } = sealedLlm;
    const agent = withAgentDefaults({ ...(row.agent as Json), llm: { usage_id: 'default', ...llm } }) as Json;
    const updated = await this.rows.modify(p, row.id, (current) => {
      const stats = (current.stats ?? {}) as Json;
      const usageId = agent.llm.usage_id as string;
      const listed = stats.usage_to_metrics?.[usageId] ? stats : { ...stats, usage_to_metrics: { ...(stats.usage_to_metrics ?? {}), ...initialStats([agent.llm as LlmConfig]).usage_to_metrics } };
      return { agent: agent as Prisma.InputJsonValue, stats: listed as Prisma.InputJsonValue, updatedAt: new Date() };
    });
    if (!updated) throw new NotFoundException({ detail: `Conversation not found: ${row.id}` });
    await this.recorder.record(row.id, stateUpdateEvent('agent', SecretVault.redactAgent(agent, SECRET_MASK)));
    await this.webhooks.conversationChanged(p.tenantId, row.id);
  }

  /**
   * OpenHands' fork: a new idle conversation with the source's configuration (agent, secrets,
   * policies, options) and a copy of its events — all of them, or up to and including
   * `from_event_id` — under the same event ids, as the SDK copies them; stats reset unless
   * `reset_metrics` is false; tags and title as given (none by default).
   *
   * Beyond OpenHands, when the source has a sandbox and the driver can copy files, the fork gets a
   * sandbox of its own holding a copy of the source's working dir as it is now (not as it was at
   * `from_event_id`: no per-event snapshots are kept); `workspace_files` in the answer says what
   * happened (`copied`, `none`, `unsupported`).
   */
  async fork(p: Principal, sourceId: string, req: ForkConversationRequest, includeSkills = false): Promise<{ info: Json; id: string }> {
    const source = await this.conversations.require(p, sourceId, () => new NotFoundException({ detail: 'Source conversation not found' }));
    const forkId = req.id ? (parseUuid(req.id) as string) : newUuid();
    const exists = () => new ConflictException({ detail: `Conversation with id ${forkId} already exists` });
    if (forkId === source.id || (await this.rows.find(tenantScope(p.tenantId), forkId))) throw exists();

    const all = await this.log.all(source.id);
    let events = all;
    if (req.from_event_id) {
      const at = all.findIndex((e) => e.id === req.from_event_id);
      if (at < 0) throw new NotFoundException({ detail: `Unknown from_event_id: ${req.from_event_id}` });
      events = all.slice(0, at + 1);
    }

    const copy = source.sandboxId && this.sandboxes.copiesWorkspaces;
    await this.quotas.admitConversation(p.tenantId, { ownSandbox: !!copy, run: false });
    const workingDir = String((source.workspace as Json).working_dir ?? '');
    let sandboxId: string | null = null;
    let files: WorkspaceCopyState = !source.sandboxId ? 'none' : 'unsupported';
    if (copy) {
      const made = await this.sandboxes.create(tenantScope(p.tenantId), { network: this.sandboxes.networkOf((await this.sandboxRows.find(tenantScope(p.tenantId), source.sandboxId!))!) }, 'conversation');
      sandboxId = made.id;
      try {
        await this.sandboxes.copyWorkspace(tenantScope(p.tenantId), source.sandboxId!, made.id, workingDir);
      } catch (err) {
        await this.sandboxes.destroy(tenantScope(p.tenantId), made).catch(() => undefined);
        throw err;
      }
      files = 'copied';
    }

    const options: ConversationOptions = { ...(source.options as ConversationOptions), forked_from_conversation_id: source.id, forked_from_event_id: req.from_event_id ?? null };
    const { awaiting_confirmation: _pending, ...state } = (source.state ?? {}) as Json;
    const now = new Date();
    try {
      await this.rows.create(
        p,
        {
          id: forkId,
          agent: source.agent as Prisma.InputJsonValue,
          workspace: source.workspace as Prisma.InputJsonValue,
          confirmationPolicy: source.confirmationPolicy as Prisma.InputJsonValue,
          securityAnalyzer: (source.securityAnalyzer ?? Prisma.DbNull) as Prisma.InputJsonValue,
          maxIterations: source.maxIterations,
          stuckDetection: source.stuckDetection,
          secrets: source.secrets as Prisma.InputJsonValue,
          tags: (req.tags ?? {}) as Prisma.InputJsonValue,
          options: options as Prisma.InputJsonValue,
          state: (req.reset_metrics ? { ...state, metrics: null } : state) as Prisma.InputJsonValue,
          // Reset: nothing listed until the fork's agent is made ready again, as the reference's fresh stats.
          stats: (req.reset_metrics ? { usage_to_metrics: {} } : (source.stats ?? {})) as Prisma.InputJsonValue,
          sandboxId,
          // A fork starts idle, as OpenHands' (no run is started by it).
          executionStatus: initialStatus(false),
          title: req.title ?? null,
          // The reference's fork starts a fresh state: no last user message until one is sent to it.
          lastUserMessageId: null,
          leafEventId: req.from_event_id ?? source.leafEventId,
          createdAt: now,
          updatedAt: now,
        },
        async (tx) => {
          for (const event of events) await this.log.append(forkId, event as OHEvent, tx);
        },
      );
    } catch (err) {
      if (sandboxId) await this.removeSandbox(p, sandboxId);
      if ((err as { code?: string }).code === ROW_NOT_UNIQUE) throw exists();
      throw err;
    }
    await this.counter.changed(p.tenantId);
    await this.webhooks.conversationChanged(p.tenantId, forkId);
    // Read through the tenant: under /sandboxes/{id} the fork's own sandbox is another one.
    const row = await this.rows.find(tenantScope(p.tenantId), forkId);
    if (!row) throw new NotFoundException({ detail: 'Source conversation not found' });
    return { id: forkId, info: { ...this.conversations.info(row, includeSkills), workspace_files: files } };
  }

  private async removeSandbox(p: Principal, sandboxId: string): Promise<void> {
    const row = await this.sandboxRows.find(tenantScope(p.tenantId), sandboxId);
    if (row) await this.sandboxes.destroy(tenantScope(p.tenantId), row).catch((err: Error) => this.logger.warn(`could not remove sandbox ${sandboxId}: ${err.message}`));
  }
}
