import { ConflictException, Injectable, NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import {
  AgentProfile,
  AgentProfileDiagnostics,
  AgentProfileInfo,
  AgentProfileInput,
  AgentProfileList,
  AgentProfileSchema,
  AGENT_SETTINGS_SCHEMA_VERSION,
  AgentSettingsSchema,
  EXECUTOR_TOOL_NAMES,
  isExecutorToolName,
  LaunchedAgentProfile,
  MAX_AGENT_PROFILES,
  migrateAgentProfilePayload,
  newUuid,
  parseUuid,
  ProfileNameSchema,
  RETIRED_TOOL_SWITCHES,
  SECRET_MASK,
  SEED_PROFILE_NAME,
  SettingsLlm,
  toValidationIssues,
} from '@berth/contracts';
import { AgentProfileRow, Prisma, SettingsRepository } from '@berth/persistence';
import { z } from 'zod';
import type { Principal } from '../common/tenant.decorator';
import { validationError, ValidationFailed } from '../common/zod-validation.pipe';
import { AgentProfileStore } from './agent-profile-store';
import { LlmProfilesService } from './llm-profiles.service';
import { SettingsVault } from './settings-vault';

type Json = Record<string, unknown>;

/** The browser tool set: a runtime without a browser leaves it out of a launch (OpenHands' launch_tool_specs). */
const BROWSER_TOOL_NAME = 'browser_tool_set';

export const agentProfileNotFound = (name: string) => new NotFoundException({ detail: `Agent profile '${name}' not found` });
export const agentProfileIdNotFound = (id: string) => new NotFoundException({ detail: `Agent profile with id '${id}' not found` });

/** A launch whose profile names what the tenant does not have (OpenHands' UnresolvedProfileReferences): 422. */
class UnresolvedReferences {
  constructor(
    readonly llmProfileRef: string | null,
    readonly mcpServerRefs: string[],
  ) {}

  get problems(): string[] {
    const out: string[] = [];
    if (this.llmProfileRef !== null) out.push(`LLM profile '${this.llmProfileRef}' not found`);
    if (this.mcpServerRefs.length) out.push(`MCP server(s) not configured: ${this.mcpServerRefs.join(', ')}`);
    return out;
  }

  get any(): boolean {
    return this.llmProfileRef !== null || this.mcpServerRefs.length > 0;
  }

  toHttp(): UnprocessableEntityException {
    return new UnprocessableEntityException({
      detail: {
        code: 'unresolved_profile_references',
        message: this.problems.join('; '),
        dangling_llm_profile_ref: this.llmProfileRef,
        dangling_mcp_server_refs: this.mcpServerRefs,
        dangling_meta_profile_ref: null,
        dangling_meta_profile_llm_refs: [],
      },
    });
  }
}

const invalidLaunch = (message: string) => new UnprocessableEntityException({ detail: { code: 'invalid_agent_launch', message } });

/** What POST /api/conversations gets from `agent_profile_id`: the agent to run and the provenance to record. */
export interface AgentProfileLaunch {
  /** An Agent with its api_key in clear text, to be sealed with the conversation. */
  agent: Json;
  profile: LaunchedAgentProfile;
  /** The conversation secrets the agent may have (`secret_refs`; null = all). */
  allowedSecrets: string[] | null;
}

/**
 * A tenant's agent profiles (`/api/agent-profiles`), as OpenHands 1.58: named launch specs that
 * reference an LLM profile by name and hold no secret. One is always active: with no valid pointer,
 * "default" is activated, made from the current settings when missing. Activating moves the
 * pointer only (agent_settings stay as they are); a conversation started with `agent_profile_id`
 * runs with the profile resolved at that moment.
 */
@Injectable()
export class AgentProfilesService {
  constructor(
    private readonly rows: SettingsRepository,
    private readonly store: AgentProfileStore,
    private readonly llmProfiles: LlmProfilesService,
    private readonly secrets: SettingsVault,
  ) {}

  async list(p: Principal): Promise<AgentProfileList> {
    return this.rows.transaction(async (tx) => {
      const active = await this.ensureActive(tx, p);
      const rows = await tx.listAgentProfiles(p);
      return { profiles: rows.map((r) => this.info(r)), active_agent_profile_id: active };
    });
  }

  async get(p: Principal, name: string): Promise<{ name: string; profile: AgentProfile }> {
    const row = await this.rows.agentProfile(p, name);
    if (!row) throw agentProfileNotFound(name);
    return { name, profile: this.store.profileOf(row) };
  }

  /** Creates or overwrites the profile under `name`: an overwrite keeps the id and bumps the revision. */
  async save(p: Principal, name: string, payload: Json): Promise<void> {
    const profile = this.validate(payload, name);
    await this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      const body = this.store.bodyOf(profile);
      if (await tx.agentProfile(p, name)) return tx.replaceAgentProfile(p, name, body);
      if ((await tx.countAgentProfiles(p)) >= MAX_AGENT_PROFILES) {
        throw new ConflictException({ detail: `Agent profile limit reached (${MAX_AGENT_PROFILES}). Delete a profile before saving a new one.` });
      }
      await tx.createAgentProfile(p, { id: newUuid(), name, profile: body });
    });
  }

  /** Idempotent; when the active profile goes, "default" becomes active (made again if it was the one deleted). */
  async remove(p: Principal, name: string): Promise<void> {
    await this.rows.transaction(async (tx) => {
      const settings = await tx.lockSettings(p);
      const row = await tx.agentProfile(p, name);
      if (!row) return;
      await tx.removeAgentProfile(p, name);
      if (settings.activeAgentProfileId === row.id) {
        await tx.updateSettings(p, { activeAgentProfileId: null });
        await this.ensureActive(tx, p);
      }
    });
  }

  /** Renames the profile; its id stays, so the active pointer (kept by id) is untouched. */
  async rename(p: Principal, name: string, newName: string): Promise<void> {
    await this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      if (!(await tx.agentProfile(p, name))) throw agentProfileNotFound(name);
      if (name === newName) return;
      if (await tx.agentProfile(p, newName)) throw new ConflictException({ detail: `Agent profile '${newName}' already exists` });
      await tx.renameAgentProfile(p, name, newName);
    });
  }

  /** Points `active_agent_profile_id` at the profile with this id; nothing else changes. */
  async activate(p: Principal, profileId: string): Promise<void> {
    await this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      await this.requireId(tx, p, profileId);
      await tx.updateSettings(p, { activeAgentProfileId: profileId });
    });
  }

  /** 404 unless the tenant has a profile with exactly this id (OpenHands compares the id as text). */
  async requireId(rows: SettingsRepository, p: Principal, profileId: string): Promise<AgentProfileRow> {
    const id = parseUuid(profileId);
    const row = id === profileId ? await rows.agentProfileById(p, id) : null;
    if (!row) throw agentProfileIdNotFound(profileId);
    return row;
  }

  /**
   * A dry run of a launch: what the stored profile (or a draft of it) would resolve to, every
   * dangling reference reported in the answer rather than raised; secrets masked.
   */
  async materialize(p: Principal, name: string, draft: Json | null): Promise<AgentProfileDiagnostics> {
    let profile: AgentProfileInput | AgentProfile;
    if (draft !== null) profile = this.validate(draft, name);
    else profile = (await this.get(p, name)).profile;

    const unusable = this.unusableTools(profile.tools);
    const failing = unusable.filter((t) => t !== BROWSER_TOOL_NAME);
    const diagnostics: AgentProfileDiagnostics = {
      agent_kind: profile.agent_kind,
      valid: false,
      errors: failing.length ? [`Tool(s) this server cannot run: ${failing.join(', ')}`] : [],
      unusable_tools: unusable,
      llm_profile_ref: profile.llm_profile_ref,
      llm_profile_resolved: false,
      llm_api_key_set: false,
      mcp_server_refs: profile.mcp_server_refs,
      // Berth runs no MCP servers: none resolves, a named one dangles.
      resolved_mcp_config_keys: [],
      dangling_mcp_server_refs: [],
      disabled_skills: profile.disabled_skills,
      public_skills: profile.public_skills,
      // Berth loads no skills: the catalog a selection filters is empty.
      resolved_skills: [],
      secret_refs: profile.secret_refs,
      acp_api_key_secret_name: null,
      acp_base_url_secret_name: null,
      acp_file_secret_names: [],
      meta_profile_ref: profile.meta_profile_ref,
      dangling_meta_profile_ref: null,
      dangling_meta_profile_llm_refs: [],
      resolved_settings: null,
    };
    let llm: SettingsLlm;
    try {
      const resolved = await this.resolveRefs(this.rows, p, profile, null);
      if (resolved instanceof UnresolvedReferences) {
        diagnostics.errors.push(...resolved.problems);
        diagnostics.dangling_mcp_server_refs = resolved.mcpServerRefs;
        if (resolved.llmProfileRef === null) {
          diagnostics.llm_profile_resolved = true;
          diagnostics.llm_api_key_set = (await this.llmProfiles.runnableLlm(this.rows, p, profile.llm_profile_ref)).api_key !== null;
        }
        return diagnostics;
      }
      llm = resolved;
    } catch (err) {
      if (err instanceof UnprocessableEntityException) {
        diagnostics.errors.push(`Failed to build agent settings: ${(err.getResponse() as { detail: string }).detail}`);
        return diagnostics;
      }
      throw err;
    }
    diagnostics.llm_profile_resolved = true;
    diagnostics.llm_api_key_set = llm.api_key !== null;
    if (diagnostics.errors.length) return diagnostics;
    diagnostics.resolved_settings = {
      schema_version: AGENT_SETTINGS_SCHEMA_VERSION,
      agent_kind: 'openhands',
      agent: profile.agent,
      llm: { ...llm, api_key: llm.api_key === null ? null : SECRET_MASK, stream: true },
      tools: this.launchTools(profile.tools),
      mcp_config: {},
      agent_context: { skills: [], system_message_suffix: profile.system_message_suffix },
      condenser: profile.condenser,
      verification: { ...profile.verification, critic_api_key: null },
      tool_concurrency_limit: profile.tool_concurrency_limit,
    };
    diagnostics.valid = true;
    return diagnostics;
  }

  /**
   * POST /api/conversations with `agent_profile_id`: the stored profile resolved now (its LLM
   * profile, through a provider connection if linked), as OpenHands' launch does: 404 for an id the
   * tenant does not have, 422 for a reference that names nothing or a tool Berth cannot run.
   */
  async launch(p: Principal, profileId: string, additions: Json | null | undefined): Promise<AgentProfileLaunch> {
    const id = parseUuid(profileId) as string;
    const row = await this.rows.agentProfileById(p, id);
    if (!row) throw agentProfileIdNotFound(id);
    const profile = this.store.profileOf(row);
    const override = additions?.llm_profile_ref;
    if (override !== undefined && override !== null && !ProfileNameSchema.safeParse(override).success) {
      throw validationError('body', ['agent_launch_additions', 'llm_profile_ref'], 'Not a profile name');
    }
    const llmRef = (override as string | null | undefined) ?? null;
    let resolved: SettingsLlm | UnresolvedReferences;
    try {
      resolved = await this.resolveRefs(this.rows, p, profile, llmRef);
    } catch (err) {
      // A dangling provider connection: OpenHands' AgentLaunchError naming the LLM profile.
      if (err instanceof UnprocessableEntityException) throw invalidLaunch(`LLM profile '${llmRef ?? profile.llm_profile_ref}': ${(err.getResponse() as { detail: string }).detail}`);
      throw err;
    }
    if (resolved instanceof UnresolvedReferences) throw resolved.toHttp();
    const failing = this.unusableTools(profile.tools).filter((t) => t !== BROWSER_TOOL_NAME);
    if (failing.length) throw invalidLaunch(`The agent uses tools this server cannot run: ${failing.join(', ')}`);
    const agent: Json = {
      kind: 'Agent',
      // A profile cannot express streaming: OpenHands launches its LLM streaming.
      llm: { ...resolved, api_key: resolved.api_key === null ? null : this.secrets.open(resolved.api_key, `the api_key of LLM profile '${llmRef ?? profile.llm_profile_ref}'`), stream: true },
      tools: this.launchTools(profile.tools),
      mcp_config: {},
      ...(profile.system_message_suffix !== null ? { agent_context: { system_message_suffix: profile.system_message_suffix } } : {}),
    };
    return {
      agent,
      profile: { agent_profile_id: row.id, revision: row.revision, secret_refs: profile.secret_refs, llm_profile_ref: llmRef },
      allowedSecrets: profile.secret_refs,
    };
  }

  /**
   * Keeps `active_agent_profile_id` on a stored profile (call in a transaction): a missing or
   * dangling pointer moves to "default", made from the settings when absent (or, with the store
   * full, to the first other profile). Returns the pointer.
   */
  private async ensureActive(tx: SettingsRepository, p: Principal): Promise<string | null> {
    const settings = await tx.lockSettings(p);
    if (settings.activeAgentProfileId && (await tx.agentProfileById(p, settings.activeAgentProfileId))) return settings.activeAgentProfileId;
    let target = (await tx.agentProfile(p, SEED_PROFILE_NAME))?.id ?? null;
    if (!target && (await tx.countAgentProfiles(p)) < MAX_AGENT_PROFILES) target = await this.seed(tx, p, settings);
    if (!target) target = (await tx.listAgentProfiles(p)).find((r) => r.name !== SEED_PROFILE_NAME)?.id ?? null;
    if (!target) return null;
    await tx.updateSettings(p, { activeAgentProfileId: target });
    return target;
  }

  /**
   * The "default" agent profile made from the settings (OpenHands' build_seed_profile): it runs the
   * active LLM profile, or an LLM profile "default" made from the settings' LLM when that is a real
   * configuration (a key or a base_url) and no profile has the name yet.
   */
  private async seed(tx: SettingsRepository, p: Principal, settings: { agentSettings: unknown; activeProfile: string | null }): Promise<string> {
    const agentSettings = AgentSettingsSchema.parse(settings.agentSettings ?? {});
    let llmRef = settings.activeProfile;
    if (!llmRef) {
      llmRef = SEED_PROFILE_NAME;
      const llm = agentSettings.llm;
      const real = llm.api_key !== null || (llm.base_url ?? '').trim() !== '';
      if (real && !(await tx.profile(p, SEED_PROFILE_NAME)) && (await tx.countProfiles(p)) < 50) {
        await tx.putProfile(p, SEED_PROFILE_NAME, llm as Prisma.InputJsonValue);
      }
    }
    const profile = AgentProfileSchema.parse({ name: SEED_PROFILE_NAME, llm_profile_ref: llmRef, tools: agentSettings.tools });
    const id = newUuid();
    await tx.createAgentProfile(p, { id, name: SEED_PROFILE_NAME, profile: this.store.bodyOf(profile) });
    return id;
  }

  /** The LLM a profile runs with (api_key sealed), or what it names that the tenant does not have. */
  private async resolveRefs(rows: SettingsRepository, p: Principal, profile: AgentProfileInput, llmOverride: string | null): Promise<SettingsLlm | UnresolvedReferences> {
    const llmRef = llmOverride ?? profile.llm_profile_ref;
    const stored = await rows.profile(p, llmRef);
    const unresolved = new UnresolvedReferences(stored ? null : llmRef, profile.mcp_server_refs ?? []);
    if (unresolved.any) return unresolved;
    return this.llmProfiles.runnableLlm(rows, p, llmRef);
  }

  /** Tools a profile selects that Berth's sandboxes cannot run. */
  private unusableTools(tools: AgentProfileInput['tools']): string[] {
    return (tools ?? []).map((t) => t.name).filter((name) => !isExecutorToolName(name));
  }

  /** The tools a launch gets: every sandbox tool for null; the browser left out (Berth has none). */
  private launchTools(tools: AgentProfileInput['tools']): { name: string; params: Json }[] {
    if (tools === null) return EXECUTOR_TOOL_NAMES.map((name) => ({ name, params: {} }));
    return tools.filter((t) => t.name !== BROWSER_TOOL_NAME).map((t) => ({ name: t.name, params: t.params }));
  }

  private info(row: AgentProfileRow): AgentProfileInfo {
    const body = row.profile as { agent_kind?: string; llm_profile_ref?: string; mcp_server_refs?: string[] | null };
    return {
      id: row.id,
      name: row.name,
      agent_kind: body.agent_kind ?? 'openhands',
      revision: row.revision,
      llm_profile_ref: body.llm_profile_ref ?? null,
      mcp_server_refs: body.mcp_server_refs ?? null,
    };
  }

  /**
   * A payload as OpenHands validates it: migrated, the path name over the body's, every problem a
   * 422 item located under "openhands" (the union's tag) with no input echoed.
   */
  private validate(payload: Json, name: string): AgentProfileInput {
    const migrated = migrateAgentProfilePayload({ ...payload, name });
    if (!migrated) throw new UnprocessableEntityException({ detail: 'Invalid agent profile' });
    if (RETIRED_TOOL_SWITCHES.some((k) => k in migrated)) {
      throw new ValidationFailed([{ loc: ['openhands'], type: 'value_error', msg: 'Value error, Retired tool switches were removed; select tools instead.' }]);
    }
    const parsed = AgentProfileSchema.safeParse(migrated);
    if (!parsed.success) {
      const issues = parsed.error.issues.flatMap((issue) =>
        // pydantic reports each unknown key at its own location.
        issue.code === 'unrecognized_keys'
          ? issue.keys.map((key) => ({ loc: ['openhands', ...(issue.path as (string | number)[]), key], type: 'extra_forbidden', msg: 'Extra inputs are not permitted' }))
          : toValidationIssues(new z.ZodError([issue]), 'openhands', migrated).map(({ loc, type, msg }) => ({ loc, type, msg })),
      );
      throw new ValidationFailed(issues);
    }
    return { ...parsed.data, tools: parsed.data.tools === null ? null : mergeDuplicateTools(parsed.data.tools) };
  }
}

/** As OpenHands: specs naming the same tool collapse into one, keeping the first that has params. */
function mergeDuplicateTools(tools: { name: string; params: Json }[]): { name: string; params: Json }[] {
  const byName = new Map<string, { name: string; params: Json }>();
  for (const tool of tools) {
    const kept = byName.get(tool.name);
    if (!kept || (Object.keys(tool.params).length && !Object.keys(kept.params).length)) byName.set(tool.name, tool);
  }
  return [...byName.values()];
}
