import { ConflictException, Injectable, NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import { classifyLlmError, createClient, wireModelName } from '@berth/agent';
import {
  ProfileDetail,
  ProfileInfo,
  ProfileList,
  SaveProfileRequest,
  SettingsLlm,
  SettingsLlmSchema,
  ValidateProfileRequest,
  ValidateProfileResult,
} from '@berth/contracts';
import OpenAI from 'openai';
import { Prisma, ProviderConnectionRow, SettingsRepository } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import type { SecretExposure } from './expose-secrets.decorator';
import { AgentProfileStore } from './agent-profile-store';
import { SettingsVault } from './settings-vault';

/** As OpenHands: more profiles than this per tenant is refused. */
const MAX_PROFILES = 50;
/** Seconds one pre-flight call may take at most (OpenHands' PREFLIGHT_TIMEOUT_SECONDS). */
const PREFLIGHT_TIMEOUT_SECONDS = 15;

export const profileNotFound = (name: string) => new NotFoundException({ detail: `Profile '${name}' not found` });

/** A profile that names a provider connection the tenant no longer has (OpenHands: 422). */
export const danglingConnection = (owner: string, connectionId: string) =>
  new UnprocessableEntityException({
    detail: `${owner} references provider connection '${connectionId}', which does not exist. Update the profile or recreate the connection.`,
  });

function summary(name: string, llm: SettingsLlm, connections: Map<string, ProviderConnectionRow>): ProfileInfo {
  const connection = llm.provider_connection_id ? connections.get(llm.provider_connection_id) : undefined;
  return {
    name,
    model: llm.model,
    base_url: llm.base_url,
    provider_connection_id: llm.provider_connection_id,
    provider_connection_broken: llm.provider_connection_id !== null && connection === undefined,
    // A profile linked to a connection keeps no key of its own: the connection's counts.
    api_key_set: llm.api_key !== null || connection !== undefined,
  };
}

/**
 * A tenant's named LLM configurations (`/api/profiles`). Activating one is a settings change
 * (SettingsService); renaming or deleting the active one moves or clears the settings' pointer.
 * Agent profiles reference them by name: a referenced profile is not deleted, and a rename is
 * carried into the agent profiles that name it.
 */
@Injectable()
export class LlmProfilesService {
  constructor(
    private readonly rows: SettingsRepository,
    private readonly secrets: SettingsVault,
    private readonly agentProfiles: AgentProfileStore,
  ) {}

  async list(p: Principal): Promise<ProfileList> {
    const [rows, settings, connections] = await Promise.all([this.rows.listProfiles(p), this.rows.settings(p), this.connectionsById(this.rows, p)]);
    return { profiles: rows.map((r) => summary(r.name, SettingsLlmSchema.parse(r.llm), connections)), active_profile: settings?.activeProfile ?? null };
  }

  /** As OpenHands, the key is null unless X-Expose-Secrets asks; `api_key_set` says whether there is one. */
  async get(p: Principal, name: string, exposure: SecretExposure): Promise<ProfileDetail> {
    const llm = await this.storedLlm(this.rows, p, name);
    // Plaintext is for a caller that builds a runnable LLM: the connection's key and base_url, as OpenHands resolves them.
    const shown = exposure === 'plaintext' ? await this.resolve(this.rows, p, llm, `Profile '${name}'`) : llm;
    const apiKey = exposure === 'redacted' ? null : this.secrets.show(shown.api_key, exposure, `the api_key of LLM profile '${name}'`);
    const connections = await this.connectionsById(this.rows, p);
    return { name, config: { ...shown, api_key: apiKey }, api_key_set: summary(name, llm, connections).api_key_set };
  }

  /**
   * Creates or replaces the profile; a masked or encrypted key sent back keeps the stored one. A
   * profile linked to a provider connection keeps no key or base_url of its own (the connection's win).
   */
  async save(p: Principal, name: string, req: SaveProfileRequest): Promise<void> {
    await this.rows.transaction(async (tx) => {
      const existing = await tx.profile(p, name);
      if (!existing && (await tx.countProfiles(p)) >= MAX_PROFILES) {
        throw new ConflictException({ detail: `Profile limit reached (${MAX_PROFILES}). Delete a profile before saving a new one.` });
      }
      const storedKey = existing ? SettingsLlmSchema.parse(existing.llm).api_key : null;
      const linked = req.llm.provider_connection_id !== null;
      const apiKey = req.include_secrets && !linked ? this.secrets.seal(req.llm.api_key, storedKey, ['llm', 'api_key']) : null;
      const llm = { ...req.llm, api_key: apiKey, ...(linked ? { base_url: null } : {}) } as Prisma.InputJsonValue;
      await tx.putProfile(p, name, llm);
    });
  }

  /** Idempotent, as OpenHands; a deleted profile stops being the active one; 409 while agent profiles name it. */
  async remove(p: Principal, name: string): Promise<void> {
    await this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      const referrers = await this.agentProfiles.referrers(tx, p, name);
      if (referrers.length) {
        throw new ConflictException({ detail: `LLM profile is referenced by ${referrers.length} agent profile(s): ${referrers.join(', ')}` });
      }
      await tx.removeProfile(p, name);
    });
  }

  /** Renames the profile; the active pointer and every agent profile's llm_profile_ref follow. */
  async rename(p: Principal, name: string, newName: string): Promise<void> {
    await this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      await this.storedLlm(tx, p, name);
      if (name === newName) return;
      if (await tx.profile(p, newName)) throw new ConflictException({ detail: `Profile '${newName}' already exists` });
      await tx.renameProfile(p, name, newName);
      await this.agentProfiles.cascadeLlmRename(tx, p, name, newName);
    });
  }

  /**
   * POST /api/profiles/{name}/validate: one bounded completion (1 token, no retries, at most 15 s)
   * with a draft config, before it is saved, as OpenHands' pre-flight. A key sent back masked or
   * as a token stands for the stored profile's; a linked provider connection's key is used. A rate
   * limit or a timeout says nothing about the configuration: valid. No error message carries the key.
   */
  async validate(p: Principal, name: string, req: ValidateProfileRequest): Promise<ValidateProfileResult> {
    const existing = await this.rows.profile(p, name);
    const storedKey = existing ? SettingsLlmSchema.parse(existing.llm).api_key : null;
    const draft = { ...req.llm, api_key: this.secrets.seal(req.llm.api_key, storedKey, ['llm', 'api_key']) };
    const llm = await this.resolve(this.rows, p, draft, 'LLM config');
    const apiKey = llm.api_key === null ? null : this.secrets.open(llm.api_key, `the api_key of LLM profile '${name}'`);
    const timeout = Math.min(llm.timeout ?? PREFLIGHT_TIMEOUT_SECONDS, PREFLIGHT_TIMEOUT_SECONDS);
    const config = { ...llm, api_key: apiKey, num_retries: 0, timeout };
    try {
      await createClient(config).chat.completions.create({
        model: wireModelName(config),
        messages: [
          { role: 'system', content: 'Reply with one token.' },
          { role: 'user', content: 'ping' },
        ],
        max_tokens: 1,
      });
      return { valid: true, error: null };
    } catch (err) {
      if (err instanceof OpenAI.APIConnectionTimeoutError) return { valid: true, error: null };
      const { code, detail, classification } = classifyLlmError(err);
      if (classification.kind === 'rate_limit') return { valid: true, error: null };
      const message = apiKey ? detail.split(apiKey).join('**********') : detail;
      return { valid: false, error: { type: code, message } };
    }
  }

  /** The profile's LLM as stored (api_key sealed); 404 when the tenant has no such profile. */
  async storedLlm(rows: SettingsRepository, p: Principal, name: string): Promise<SettingsLlm> {
    const row = await rows.profile(p, name);
    if (!row) throw profileNotFound(name);
    return SettingsLlmSchema.parse(row.llm);
  }

  /** The profile's LLM ready to run (api_key sealed): its provider connection's key and base_url applied. */
  async runnableLlm(rows: SettingsRepository, p: Principal, name: string): Promise<SettingsLlm> {
    return this.resolve(rows, p, await this.storedLlm(rows, p, name), `Profile '${name}'`);
  }

  /**
   * As OpenHands' read-at-use resolution: a linked connection's api_key and base_url win; a missing
   * one is a 422 unless the LLM carries a key of its own.
   */
  async resolve(rows: SettingsRepository, p: Principal, llm: SettingsLlm, owner: string): Promise<SettingsLlm> {
    if (!llm.provider_connection_id) return llm;
    const connection = await rows.connection(p, llm.provider_connection_id);
    if (!connection) {
      if (llm.api_key !== null) return llm;
      throw danglingConnection(owner, llm.provider_connection_id);
    }
    return { ...llm, api_key: connection.apiKey, base_url: connection.baseUrl };
  }

  /** Names of the tenant's LLM profiles linked to a connection. */
  async linkedTo(rows: SettingsRepository, p: Principal, connectionId: string): Promise<string[]> {
    return (await rows.listProfiles(p)).filter((r) => SettingsLlmSchema.parse(r.llm).provider_connection_id === connectionId).map((r) => r.name);
  }

  private async connectionsById(rows: SettingsRepository, p: Principal): Promise<Map<string, ProviderConnectionRow>> {
    return new Map((await rows.listConnections(p)).map((c) => [c.id, c]));
  }
}
