import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { ProfileDetail, ProfileInfo, ProfileList, SaveProfileRequest, SettingsLlm, SettingsLlmSchema } from '@berth/contracts';
import { Prisma, SettingsRepository } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import type { SecretExposure } from './expose-secrets.decorator';
import { SettingsVault } from './settings-vault';

/** As OpenHands: more profiles than this per tenant is refused. */
const MAX_PROFILES = 50;

export const profileNotFound = (name: string) => new NotFoundException({ detail: `Profile '${name}' not found` });

function summary(name: string, llm: SettingsLlm): ProfileInfo {
  return {
    name,
    model: llm.model,
    base_url: llm.base_url,
    provider_connection_id: null,
    provider_connection_broken: false,
    api_key_set: llm.api_key !== null,
  };
}

/**
 * A tenant's named LLM configurations (`/api/profiles`). Activating one is a settings change
 * (SettingsService); renaming or deleting the active one moves or clears the settings' pointer.
 */
@Injectable()
export class LlmProfilesService {
  constructor(
    private readonly rows: SettingsRepository,
    private readonly secrets: SettingsVault,
  ) {}

  async list(p: Principal): Promise<ProfileList> {
    const [rows, settings] = await Promise.all([this.rows.listProfiles(p), this.rows.settings(p)]);
    return { profiles: rows.map((r) => summary(r.name, SettingsLlmSchema.parse(r.llm))), active_profile: settings?.activeProfile ?? null };
  }

  /** As OpenHands, the key is null unless X-Expose-Secrets asks; `api_key_set` says whether there is one. */
  async get(p: Principal, name: string, exposure: SecretExposure): Promise<ProfileDetail> {
    const llm = await this.storedLlm(this.rows, p, name);
    const apiKey = exposure === 'redacted' ? null : this.secrets.show(llm.api_key, exposure);
    return { name, config: { ...llm, api_key: apiKey }, api_key_set: llm.api_key !== null };
  }

  /** Creates or replaces the profile; a masked or encrypted key sent back keeps the stored one. */
  async save(p: Principal, name: string, req: SaveProfileRequest): Promise<void> {
    await this.rows.transaction(async (tx) => {
      const existing = await tx.profile(p, name);
      if (!existing && (await tx.countProfiles(p)) >= MAX_PROFILES) {
        throw new ConflictException({ detail: `Profile limit reached (${MAX_PROFILES}). Delete a profile before saving a new one.` });
      }
      const storedKey = existing ? SettingsLlmSchema.parse(existing.llm).api_key : null;
      const apiKey = req.include_secrets ? this.secrets.seal(req.llm.api_key, storedKey, ['llm', 'api_key']) : null;
      const llm = { ...req.llm, api_key: apiKey } as Prisma.InputJsonValue;
      await tx.putProfile(p, name, llm);
    });
  }

  /** Idempotent, as OpenHands; a deleted profile stops being the active one. */
  async remove(p: Principal, name: string): Promise<void> {
    await this.rows.transaction((tx) => tx.removeProfile(p, name));
  }

  async rename(p: Principal, name: string, newName: string): Promise<void> {
    await this.rows.transaction(async (tx) => {
      await this.storedLlm(tx, p, name);
      if (name === newName) return;
      if (await tx.profile(p, newName)) throw new ConflictException({ detail: `Profile '${newName}' already exists` });
      await tx.renameProfile(p, name, newName);
    });
  }

  /** The profile's LLM as stored (api_key sealed); 404 when the tenant has no such profile. */
  async storedLlm(rows: SettingsRepository, p: Principal, name: string): Promise<SettingsLlm> {
    const row = await rows.profile(p, name);
    if (!row) throw profileNotFound(name);
    return SettingsLlmSchema.parse(row.llm);
  }
}
