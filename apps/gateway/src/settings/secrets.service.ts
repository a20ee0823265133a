import { Injectable, NotFoundException } from '@nestjs/common';
import { SecretCreateRequest, SecretItem } from '@berth/contracts';
import { SecretVault } from '@berth/crypto';
import { Database } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import { mayReadPlaintext, plaintextRefused } from './expose-secrets.decorator';

/** The same answer for every missing name, as OpenHands (it tells nothing about other names). */
export const secretNotFound = () => new NotFoundException({ detail: 'Secret not found' });

/** A tenant's secrets store (`/api/settings/secrets`): values encrypted at rest, listed by name only. */
@Injectable()
export class SecretsService {
  constructor(
    private readonly db: Database,
    private readonly vault: SecretVault,
  ) {}

  async list(p: Principal): Promise<{ secrets: SecretItem[] }> {
    const secrets = await this.db.prisma.tenantSecret.findMany({
      where: { tenantId: p.tenantId },
      orderBy: { name: 'asc' },
      select: { name: true, description: true },
    });
    return { secrets };
  }

  /** A value in clear text: for the server's own keys only, like `X-Expose-Secrets: plaintext`. */
  async value(p: Principal, name: string): Promise<string> {
    if (!mayReadPlaintext(p)) throw plaintextRefused();
    const row = await this.db.prisma.tenantSecret.findUnique({ where: { tenantId_name: { tenantId: p.tenantId, name } }, select: { value: true } });
    if (!row) throw secretNotFound();
    return this.vault.decrypt(row.value);
  }

  /** Creates or replaces a secret (its description too). */
  async upsert(p: Principal, req: SecretCreateRequest): Promise<SecretItem> {
    const data = { value: this.vault.encrypt(req.value), description: req.description ?? null };
    await this.db.prisma.tenantSecret.upsert({
      where: { tenantId_name: { tenantId: p.tenantId, name: req.name } },
      create: { tenantId: p.tenantId, name: req.name, ...data },
      update: { ...data, updatedAt: new Date() },
    });
    return { name: req.name, description: data.description };
  }

  async remove(p: Principal, name: string): Promise<void> {
    const { count } = await this.db.prisma.tenantSecret.deleteMany({ where: { tenantId: p.tenantId, name } });
    if (!count) throw secretNotFound();
  }
}
