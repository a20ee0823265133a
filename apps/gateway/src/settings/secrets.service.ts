import { Injectable, NotFoundException } from '@nestjs/common';
import { parseUuid, SecretCreateRequest, SecretItem } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { SettingsRepository } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import { AgentProfileStore } from './agent-profile-store';
import { mayReadPlaintext, plaintextRefused } from './expose-secrets.decorator';

/** The same answer for every missing name, as OpenHands (it tells nothing about other names). */
export const secretNotFound = () => new NotFoundException({ detail: 'Secret not found' });

/** A tenant's secrets store (`/api/settings/secrets`): values encrypted at rest, listed by name only. */
@Injectable()
export class SecretsService {
  constructor(
    private readonly rows: SettingsRepository,
    private readonly vault: SecretVault,
    private readonly agentProfiles: AgentProfileStore,
  ) {}

  /** The secrets by name; with an agent profile's id, only those its secret_refs let its agent have. */
  async list(p: Principal, agentProfileId?: string): Promise<{ secrets: SecretItem[] }> {
    const secrets = await this.rows.listSecrets(p);
    if (agentProfileId === undefined) return { secrets };
    const id = parseUuid(agentProfileId);
    const row = id === agentProfileId ? await this.rows.agentProfileById(p, id) : null;
    if (!row) throw new NotFoundException({ detail: 'Agent profile not found' });
    const allowed = this.agentProfiles.profileOf(row).secret_refs;
    return { secrets: allowed === null ? secrets : secrets.filter((s) => allowed.includes(s.name)) };
  }

  /** A value in clear text: for the server's own keys only, like `X-Expose-Secrets: plaintext`. */
  async value(p: Principal, name: string): Promise<string> {
    if (!mayReadPlaintext(p)) throw plaintextRefused();
    const sealed = await this.rows.secretValue(p, name);
    if (sealed === null) throw secretNotFound();
    return this.vault.decrypt(sealed, `secret '${name}'`);
  }

  /** Creates or replaces a secret (its description too). */
  async upsert(p: Principal, req: SecretCreateRequest): Promise<SecretItem> {
    const description = req.description ?? null;
    await this.rows.putSecret(p, req.name, this.vault.encrypt(req.value), description);
    return { name: req.name, description };
  }

  async remove(p: Principal, name: string): Promise<void> {
    if (!(await this.rows.removeSecret(p, name))) throw secretNotFound();
  }
}
