import { Injectable, NotFoundException } from '@nestjs/common';
import { parseUuid, utcTimestamp } from '@berth/contracts';
import { sha256Hex } from '@berth/crypto';
import { Database } from '@berth/persistence';
import { randomBytes, randomUUID } from 'node:crypto';
import { TenancyEpoch } from '../quotas/tenancy-epoch';
import { fromStart, NEWEST_FIRST, pageOf } from './paging';
import { TenantsService } from './tenants.service';

export const API_KEY_PREFIX = 'brt_';
/** Characters of the key shown in listings: `brt_` and four more. */
const SHOWN_PREFIX = 8;

type ApiKeyRow = {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  lastFour: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
};

const keyNotFound = (id: string) => new NotFoundException({ detail: `API key not found: ${id}` });
const timestamp = (d: Date | null) => (d ? utcTimestamp(d) : null);

/** A tenant's API keys: made here and shown once, stored as SHA-256, revoked for every replica at once. */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly db: Database,
    private readonly tenants: TenantsService,
    private readonly epoch: TenancyEpoch,
  ) {}

  info(row: ApiKeyRow) {
    return {
      id: row.id,
      tenant_id: row.tenantId,
      name: row.name,
      prefix: row.prefix,
      last_four: row.lastFour,
      created_at: utcTimestamp(row.createdAt),
      last_used_at: timestamp(row.lastUsedAt),
      expires_at: timestamp(row.expiresAt),
      revoked_at: timestamp(row.revokedAt),
    };
  }

  /** A new key: `brt_` and 32 random bytes in base64url. The answer is the only place it ever appears. */
  async create(tenantId: string, req: { name: string; expires_at: Date | null }): Promise<{ row: ApiKeyRow; key: string }> {
    await this.tenants.require(tenantId);
    const key = API_KEY_PREFIX + randomBytes(32).toString('base64url');
    const row = await this.db.prisma.apiKey.create({
      data: {
        id: randomUUID(),
        tenantId,
        name: req.name,
        prefix: key.slice(0, SHOWN_PREFIX),
        lastFour: key.slice(-4),
        keyHash: sha256Hex(key),
        expiresAt: req.expires_at,
      },
    });
    return { row, key };
  }

  async list(tenantId: string, q: { page_id?: string; limit: number }) {
    await this.tenants.require(tenantId);
    const startId = q.page_id ? parseUuid(q.page_id) : null;
    const start = startId ? await this.db.prisma.apiKey.findFirst({ where: { id: startId, tenantId }, select: { id: true, createdAt: true } }) : null;
    const rows = await this.db.prisma.apiKey.findMany({ where: { tenantId, ...fromStart(start) }, orderBy: NEWEST_FIRST, take: q.limit + 1 });
    return pageOf(rows, q.limit);
  }

  /** Revokes the key (kept, for the listing); revoking it again changes nothing. */
  async revoke(tenantId: string, keyId: string): Promise<ApiKeyRow> {
    await this.db.prisma.apiKey.updateMany({ where: { id: keyId, tenantId, revokedAt: null }, data: { revokedAt: new Date() } });
    const row = await this.db.prisma.apiKey.findFirst({ where: { id: keyId, tenantId } });
    if (!row) throw keyNotFound(keyId);
    await this.epoch.bump();
    return row;
  }
}
