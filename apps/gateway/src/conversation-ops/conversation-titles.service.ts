import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { fallbackTitle, LlmConfig, llmCallUsage, LlmReply, messageText, titleFromLlm } from '@berth/agent';
import { EventRecorder } from '@berth/bus';
import { naiveTimestamp, newUuid, OHEvent, stateUpdateEvent } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { ConversationOptions, ConversationRepository, ConversationRow, Database, EventLog, SettingsRepository, tenantScope } from '@berth/persistence';
import { WebhookDispatcher } from '@berth/webhooks';
import type { Principal } from '../common/tenant.decorator';
import { LlmProfilesService } from '../settings/llm-profiles.service';

type Json = Record<string, any>;

/** Conversations the boot sweep looks at: untitled ones changed this recently (older ones were given up on). */
const SWEEP_WINDOW_MS = 24 * 3600_000;
const SWEEP_LIMIT = 200;
/** How long a stopping process waits for the writes of titles in flight. */
const DRAIN_MS = 5000;

/**
 * OpenHands' AutoTitleSubscriber: the first user message of an untitled conversation (autotitle on)
 * is given to an LLM for a title, in the background — the `title_llm_profile` when it is set and
 * loads, else the agent's LLM; when the call fails (a ConversationErrorEvent says why) or answers
 * nothing, the message itself, shortened, is the title. The agent's LLM's call counts in the
 * conversation's stats (a stats update, as the reference's registry counts it); a profile's does
 * not (the reference loads it outside the registry). A title not written before the process ends
 * is written by the next process's boot sweep.
 */
@Injectable()
export class ConversationTitles implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('ConversationTitles');
  private readonly pending = new Set<Promise<void>>();
  private readonly inFlight = new Set<string>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly rows: ConversationRepository,
    private readonly log: EventLog,
    private readonly recorder: EventRecorder,
    private readonly vault: SecretVault,
    private readonly webhooks: WebhookDispatcher,
    private readonly profiles: LlmProfilesService,
    private readonly settingsRows: SettingsRepository,
    private readonly db: Database,
  ) {}

  /** After a user message was stored: titles the conversation in the background unless it has a title or autotitle is off. */
  afterUserMessage(row: Pick<ConversationRow, 'id' | 'tenantId' | 'title' | 'options'>, content: unknown): void {
    if (row.title !== null || (row.options as ConversationOptions).autotitle === false) return;
    const text = messageText(content);
    if (text) this.start(row.tenantId, row.id, text);
  }

  onApplicationBootstrap(): void {
    const sweep = this.sweep().catch((err: Error) => this.logger.warn(`title sweep failed: ${err.message}`));
    this.track(sweep);
  }

  /** LLM calls in flight are cut short (the next start's sweep titles those conversations); their writes finish first. */
  async onModuleDestroy(): Promise<void> {
    this.stopping.abort();
    const timer = new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref());
    await Promise.race([Promise.allSettled([...this.pending]), timer]);
  }

  /** Titles conversations whose title an earlier process did not write (it ended mid-call), one at a time. */
  private async sweep(): Promise<void> {
    // The app boots while a fresh database is still being migrated.
    await this.db.ready;
    const rows = await this.rows.listUntitledOfAllTenants(new Date(Date.now() - SWEEP_WINDOW_MS), SWEEP_LIMIT);
    for (const row of rows) {
      if (this.stopping.signal.aborted) return;
      if ((row.options as ConversationOptions).autotitle === false || this.inFlight.has(row.id)) continue;
      const first = (await this.log.search(row.id, { kind: 'MessageEvent', source: 'user', limit: 1, descending: false })).items[0];
      const text = first ? messageText((first.llm_message as Json | undefined)?.content) : null;
      if (text) await this.write(row.tenantId, row.id, text).catch((err: Error) => this.logger.warn(`conversation ${row.id}: no title written: ${err.message}`));
    }
  }

  private start(tenantId: string, id: string, text: string): void {
    if (this.inFlight.has(id)) return;
    this.inFlight.add(id);
    this.track(
      this.write(tenantId, id, text)
        .catch((err: Error) => this.logger.warn(`conversation ${id}: no title written: ${err.message}`))
        .finally(() => this.inFlight.delete(id)),
    );
  }

  private track(task: Promise<void>): void {
    this.pending.add(task);
    void task.finally(() => this.pending.delete(task));
  }

  private async write(tenantId: string, id: string, text: string): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const scope = tenantScope(tenantId);
    const row = await this.rows.find(scope, id);
    if (!row || row.title !== null) return;
    const options = row.options as ConversationOptions & { title_llm_profile?: string | null; prompt?: string | null };
    const agentLlm = (this.vault.openAgent(row.agent as Json).llm ?? null) as LlmConfig | null;
    const profileLlm = options.title_llm_profile ? await this.profileLlm(tenantId, options.title_llm_profile) : null;
    const llm = profileLlm ?? agentLlm;
    let title: string | null = null;
    if (llm) {
      try {
        const answer = await titleFromLlm(llm, text, options.prompt, this.stopping.signal);
        title = answer.title;
        if (!profileLlm) await this.countUsage(tenantId, id, llm, answer.reply);
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        await this.recordFailure(id, err, llm);
      }
    }
    title ??= fallbackTitle(text);
    const updated = await this.rows.modify(scope, id, (current) => (current.title === null ? { title, updatedAt: new Date() } : {}));
    if (updated?.title === title) await this.webhooks.conversationChanged(tenantId, id);
  }

  /** The profile's LLM with its key opened, or null (unknown or broken profile: the agent's LLM is used, as the reference falls back). */
  private async profileLlm(tenantId: string, name: string): Promise<LlmConfig | null> {
    try {
      const llm = await this.profiles.runnableLlm(this.settingsRows, { tenantId, keyId: 'system' } as Principal, name);
      return { ...(llm as unknown as LlmConfig), api_key: llm.api_key === null ? null : this.vault.decrypt(llm.api_key) };
    } catch (err) {
      this.logger.warn(`title LLM profile '${name}' could not be loaded: ${(err as Error).message}. Falling back to the agent's LLM.`);
      return null;
    }
  }

  private async countUsage(tenantId: string, id: string, llm: LlmConfig, reply: LlmReply): Promise<void> {
    const snapshot = await this.rows.addUsage(tenantScope(tenantId), id, llmCallUsage(llm, reply));
    if (snapshot) await this.recorder.record(id, stateUpdateEvent('stats', snapshot));
  }

  /** The reference's _publish_error_event_sync: the failure shown to the UI, the key never in it. */
  private async recordFailure(id: string, err: unknown, llm: LlmConfig): Promise<void> {
    let detail = (err as Error)?.message ?? String(err);
    if (llm.api_key) detail = detail.split(llm.api_key).join('**********');
    const event: OHEvent = {
      id: newUuid(),
      timestamp: naiveTimestamp(),
      source: 'environment',
      code: (err as Error)?.constructor?.name ?? 'Error',
      detail,
      kind: 'ConversationErrorEvent',
    };
    await this.recorder.record(id, event).catch((e: Error) => this.logger.warn(`conversation ${id}: title failure not recorded: ${e.message}`));
  }
}
