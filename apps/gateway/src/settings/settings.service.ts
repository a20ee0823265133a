import { BadRequestException, Injectable } from '@nestjs/common';
import {
  AgentSettings,
  AgentSettingsSchema,
  ConversationSettings,
  ConversationSettingsSchema,
  mergePatch,
  MiscSettings,
  MiscSettingsSchema,
  SECRET_MASK,
  SettingsResponse,
  SettingsUpdateRequest,
  settingsFormOf,
  toValidationIssues,
} from '@berth/contracts';
import { Fernet, SecretDecryptError } from '@berth/crypto';
import { Prisma, SettingsRepository } from '@berth/persistence';
import { z } from 'zod';
import type { Principal } from '../common/tenant.decorator';
import { ValidationFailed } from '../common/zod-validation.pipe';
import type { SecretExposure } from './expose-secrets.decorator';
import { AgentProfileLaunch, AgentProfilesService } from './agent-profiles.service';
import { LlmProfilesService } from './llm-profiles.service';
import { SettingsVault } from './settings-vault';

type Json = Record<string, unknown>;

/** A tenant's settings as stored: every field present, the LLM api_key sealed. */
interface StoredSettings {
  agent: AgentSettings;
  conversation: ConversationSettings;
  misc: MiscSettings;
  activeProfile: string | null;
  activeAgentProfileId: string | null;
}

/** How an error names the settings' stored LLM key. */
export const SETTINGS_API_KEY = "the settings' agent_settings.llm.api_key";

const UPDATE_FIELDS = ['agent_settings_diff', 'conversation_settings_diff', 'misc_settings_diff', 'active_profile', 'active_agent_profile_id'] as const;

/** `current` with a client's merge patch applied, validated whole; a 422 locates errors inside `field`. */
function patched<S extends z.ZodType>(schema: S, field: string, current: unknown, diff: Json): z.output<S> {
  const merged = mergePatch(current, diff);
  const result = schema.safeParse(merged);
  if (result.success) return result.data;
  throw new ValidationFailed(toValidationIssues(result.error, field, merged).map((issue) => ({ ...issue, loc: ['body', ...issue.loc] })));
}

/**
 * The settings store of a tenant (contract §3.9): agent settings (LLM, tools), conversation
 * defaults and the frontend's preferences, one row per tenant, changed by merge patches.
 */
@Injectable()
export class SettingsService {
  readonly agentForm = settingsFormOf('AgentSettings', AgentSettingsSchema, 'openhands');
  readonly conversationForm = settingsFormOf('ConversationSettings', ConversationSettingsSchema);

  constructor(
    private readonly rows: SettingsRepository,
    private readonly secrets: SettingsVault,
    private readonly profiles: LlmProfilesService,
    private readonly agentProfiles: AgentProfilesService,
  ) {}

  async get(p: Principal, exposure: SecretExposure): Promise<SettingsResponse> {
    return this.view(this.parse(await this.rows.settings(p)), exposure);
  }

  /**
   * PATCH /api/settings: each diff is merged into its settings object and the result validated
   * whole; everything is written together or nothing is. The answer never shows secrets.
   */
  async update(p: Principal, req: SettingsUpdateRequest): Promise<SettingsResponse> {
    if (UPDATE_FIELDS.every((field) => req[field] === undefined)) {
      throw new BadRequestException({ detail: `At least one of ${UPDATE_FIELDS.join(', ')} must be provided` });
    }
    const settings = await this.rows.transaction(async (tx) => {
      const current = this.parse(await tx.lockSettings(p));
      const next = { ...current };
      // As POST /api/agent-profiles/{id}/activate: the pointer only, to a profile the tenant has.
      if (req.active_agent_profile_id) await this.agentProfiles.requireId(tx, p, req.active_agent_profile_id);
      if (req.active_agent_profile_id !== undefined) next.activeAgentProfileId = req.active_agent_profile_id;
      if (req.agent_settings_diff) next.agent = this.patchAgent(current.agent, req.agent_settings_diff);
      if (req.conversation_settings_diff) {
        next.conversation = patched(ConversationSettingsSchema, 'conversation_settings_diff', current.conversation, req.conversation_settings_diff);
      }
      if (req.misc_settings_diff) next.misc = patched(MiscSettingsSchema, 'misc_settings_diff', current.misc, req.misc_settings_diff);
      if (req.active_profile !== undefined) {
        next.activeProfile = req.active_profile;
        // As OpenHands: the profile's LLM is applied, unless the same request sets an LLM itself.
        if (req.active_profile && !('llm' in (req.agent_settings_diff ?? {}))) {
          next.agent = { ...next.agent, llm: await this.profiles.runnableLlm(tx, p, req.active_profile) };
        }
      }
      await tx.updateSettings(p, {
        agentSettings: next.agent as Prisma.InputJsonValue,
        conversationSettings: next.conversation as Prisma.InputJsonValue,
        miscSettings: next.misc as Prisma.InputJsonValue,
        activeProfile: next.activeProfile,
        activeAgentProfileId: next.activeAgentProfileId,
      });
      return next;
    });
    return this.view(settings, 'redacted');
  }

  /** POST /api/profiles/{name}/activate: the profile's LLM becomes agent_settings.llm. */
  async activateProfile(p: Principal, name: string): Promise<void> {
    await this.update(p, { active_profile: name });
  }

  /**
   * POST /api/conversations with `agent_profile_id`: the agent the stored profile resolves to, and
   * what the conversation records of it (AgentProfilesService.launch).
   */
  launchAgentProfile(p: Principal, profileId: string, additions: Record<string, unknown> | null | undefined): Promise<AgentProfileLaunch> {
    return this.agentProfiles.launch(p, profileId, additions);
  }

  /**
   * The clear text of a secret value a client got from GET /api/settings and sends back (on
   * POST /api/conversations with `secrets_encrypted: true`, say): a token from `X-Expose-Secrets:
   * encrypted` is decrypted, the mask stands for the tenant's stored LLM api_key, anything else is
   * clear text already. Throws SecretDecryptError for a token this server did not make, or a mask
   * with no stored key behind it; `what` names a token in its message.
   */
  async revealSecret(p: Principal, value: string, what?: string): Promise<string> {
    if (Fernet.looksEncrypted(value)) return this.secrets.open(value, what);
    if (value !== SECRET_MASK) return value;
    const stored = this.parse(await this.rows.settings(p)).agent.llm.api_key;
    if (stored === null) throw new SecretDecryptError('the masked api_key stands for no stored key');
    return this.secrets.open(stored, SETTINGS_API_KEY);
  }

  private patchAgent(current: AgentSettings, diff: Json): AgentSettings {
    const next = patched(AgentSettingsSchema, 'agent_settings_diff', current, diff);
    const sent = (diff.llm as Json | undefined)?.api_key;
    if (typeof sent === 'string') next.llm.api_key = this.secrets.seal(sent, current.llm.api_key, ['agent_settings_diff', 'llm', 'api_key']);
    return next;
  }

  private view(s: StoredSettings, exposure: SecretExposure): SettingsResponse {
    return {
      agent_settings: { ...s.agent, llm: { ...s.agent.llm, api_key: this.secrets.show(s.agent.llm.api_key, exposure, SETTINGS_API_KEY) } },
      conversation_settings: s.conversation,
      llm_api_key_is_set: s.agent.llm.api_key !== null,
      active_profile: s.activeProfile,
      active_agent_profile_id: s.activeAgentProfileId,
      misc_settings: s.misc,
    };
  }

  /** The stored settings, defaults filled in (a tenant that never saved any has no row). */
  private parse(
    row: { agentSettings: unknown; conversationSettings: unknown; miscSettings: unknown; activeProfile: string | null; activeAgentProfileId: string | null } | null,
  ): StoredSettings {
    return {
      agent: AgentSettingsSchema.parse(row?.agentSettings ?? {}),
      conversation: ConversationSettingsSchema.parse(row?.conversationSettings ?? {}),
      misc: MiscSettingsSchema.parse(row?.miscSettings ?? {}),
      activeProfile: row?.activeProfile ?? null,
      activeAgentProfileId: row?.activeAgentProfileId ?? null,
    };
  }
}
