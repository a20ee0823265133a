import { Injectable, NotFoundException } from '@nestjs/common';
import { SecretCreateRequest, SecretItem } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { SettingsRepository } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import { mayReadPlaintext, plaintextRefused } from './expose-secrets.decorator';

/** The same answer for every missing name, as OpenHands (it tells nothing about other names). */
export const secretNotFound = () => new NotFoundException({ detail: 'Secret not found' });

/** A tenant's secrets store (`/api/settings/secrets`): values encrypted at rest, listed by name only. */
@Injectable()
export class SecretsService {
  constructor(
    private readonly rows: SettingsRepository,
    private readonly vault: SecretVault,
  ) {}

  async list(p: Principal): Promise<{ secrets: SecretItem[] }> {
    return { secrets: await this.rows.listSecrets(p) };
  }

  /** A value in clear text: for the server's own keys only, like `X-Expose-Secrets: plaintext`. */
  async value(p: Principal, name: string): Promise<string> {
    if (!mayReadPlaintext(p)) throw plaintextRefused();
    const sealed = await this.rows.secretValue(p, name);
    if (sealed === null) throw secretNotFound();
    return this.vault.decrypt(sealed);
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
