import { ConflictException, Injectable, NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import {
  AgentSettingsSchema,
  MAX_PROVIDER_CONNECTIONS,
  ProviderConnectionCreateRequest,
  ProviderConnectionUpdateRequest,
  ProviderConnectionView,
  uuidHex,
  newUuid,
} from '@berth/contracts';
import { ProviderConnectionChange, ProviderConnectionRow, SettingsRepository } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import { LlmProfilesService } from './llm-profiles.service';
import { SettingsVault } from './settings-vault';

export const connectionNotFound = (id: string) => new NotFoundException({ detail: `Provider connection '${id}' not found` });

const epochSeconds = (d: Date) => Math.floor(d.getTime() / 1000);

function view(row: ProviderConnectionRow, apiKeySet = true): ProviderConnectionView {
  return {
    id: row.id,
    display_name: row.displayName,
    provider: row.provider,
    base_url: row.baseUrl,
    created_at: epochSeconds(row.createdAt),
    updated_at: epochSeconds(row.updatedAt),
    api_key_set: apiKeySet,
  };
}

/**
 * A tenant's LLM provider connections (`/api/llm/provider-connections`), as OpenHands: a shared
 * api_key (sealed like every LLM key) and base_url that LLM profiles name by id and resolve when they
 * are activated or launched, so rotating the key here reaches every linked profile. The key is never
 * shown; a connection still referenced cannot be deleted.
 */
@Injectable()
export class ProviderConnectionsService {
  constructor(
    private readonly rows: SettingsRepository,
    private readonly secrets: SettingsVault,
    private readonly llmProfiles: LlmProfilesService,
  ) {}

  async list(p: Principal): Promise<ProviderConnectionView[]> {
    return (await this.rows.listConnections(p)).map((row) => view(row));
  }

  async create(p: Principal, req: ProviderConnectionCreateRequest): Promise<ProviderConnectionView> {
    const apiKey = this.secrets.seal(req.api_key, null, ['api_key']) as string;
    return this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      if ((await tx.countConnections(p)) >= MAX_PROVIDER_CONNECTIONS) {
        throw new ConflictException({ detail: `Provider connection limit reached (${MAX_PROVIDER_CONNECTIONS}). Delete one before adding another.` });
      }
      const now = new Date();
      const row = await tx.createConnection(p, {
        id: uuidHex(newUuid()),
        displayName: req.display_name,
        provider: req.provider,
        apiKey,
        baseUrl: req.base_url,
        createdAt: now,
        updatedAt: now,
      });
      return view(row);
    });
  }

  /** Changes the fields sent (base_url null clears it); a new api_key rotates the shared key. */
  async update(p: Principal, id: string, req: ProviderConnectionUpdateRequest): Promise<ProviderConnectionView> {
    if (Object.keys(req).length === 0) throw new UnprocessableEntityException({ detail: 'Provide at least one provider connection field to update' });
    return this.rows.transaction(async (tx) => {
      await tx.lockSettings(p);
      const row = await tx.connection(p, id);
      if (!row) throw connectionNotFound(id);
      if (req.api_key === null) throw new UnprocessableEntityException({ detail: 'api_key cannot be cleared; provide a new key to rotate it' });
      const change: ProviderConnectionChange = {};
      if (req.display_name != null) change.displayName = req.display_name;
      if (req.provider != null) change.provider = req.provider;
      if (req.base_url !== undefined) change.baseUrl = req.base_url;
      if (req.api_key !== undefined) change.apiKey = this.secrets.seal(req.api_key, row.apiKey, ['api_key']) as string;
      return view(await tx.updateConnection(p, id, change));
    });
  }

  /** 409 while an LLM profile or the active agent settings still use it; the answer says the key is gone. */
  async remove(p: Principal, id: string): Promise<ProviderConnectionView> {
    return this.rows.transaction(async (tx) => {
      const settings = await tx.lockSettings(p);
      const row = await tx.connection(p, id);
      if (!row) throw connectionNotFound(id);
      const reasons: string[] = [];
      const linked = (await this.llmProfiles.linkedTo(tx, p, id)).sort();
      if (linked.length) reasons.push(`referenced by LLM profile(s): ${linked.join(', ')}`);
      if (AgentSettingsSchema.parse(settings.agentSettings ?? {}).llm.provider_connection_id === id) reasons.push('referenced by the active agent settings');
      if (reasons.length) {
        throw new ConflictException({
          detail: `Provider connection cannot be deleted while it is ${reasons.join(' and ')}. Update those references before deleting it.`,
        });
      }
      await tx.removeConnection(p, id);
      return view(row, false);
    });
  }
}
