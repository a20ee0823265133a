import { Inject, Injectable, Logger } from '@nestjs/common';
import { BERTH_CONFIG, isLoopbackHost } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { constantTimeEqual, sha256Hex } from '@berth/crypto';
import { Database, DEFAULT_TENANT_ID } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';

const HIT_TTL_MS = 30_000;
const MISS_TTL_MS = 5_000;
const CACHE_LIMIT = 10_000;

/**
 * Resolves an X-Session-API-Key to its tenant. The OH_SESSION_API_KEYS_* keys belong to the default
 * tenant and are compared in constant time; tenant keys are looked up by SHA-256 (they are never
 * stored in clear) and cached briefly, misses included, so a flood of bad keys cannot load the database.
 */
@Injectable()
export class ApiKeyService {
  private readonly logger = new Logger('Auth');
  private readonly cache = new Map<string, { principal: Principal | null; expires: number }>();

  constructor(
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
    private readonly db: Database,
  ) {
    if (this.isOpen && !isLoopbackHost(config.host)) {
      this.logger.warn(
        `NO API KEY IS CONFIGURED and the server listens on ${config.host}: anyone who can reach it can run ` +
          `commands. Set OH_SESSION_API_KEYS_0 (or SESSION_API_KEY).`,
      );
    }
  }

  /** No key configured: every request is let in as the default tenant, as OpenHands does. */
  get isOpen(): boolean {
    return this.config.sessionApiKeys.length === 0;
  }

  async resolve(key: string | undefined): Promise<Principal | null> {
    if (key) {
      // Check every configured key so the time taken does not tell which one matched.
      let match = -1;
      this.config.sessionApiKeys.forEach((k, i) => {
        if (constantTimeEqual(k, key) && match < 0) match = i;
      });
      if (match >= 0) return { tenantId: DEFAULT_TENANT_ID, keyId: `env:${match}` };
      const stored = await this.lookupStoredKey(key);
      if (stored) return stored;
    }
    return this.isOpen ? { tenantId: DEFAULT_TENANT_ID, keyId: 'open' } : null;
  }

  /** Whether the sandbox exists and belongs to the tenant (another tenant's is "not found"). */
  async ownsSandbox(tenantId: string, sandboxId: string): Promise<boolean> {
    const row = await this.db.prisma.sandbox.findFirst({ where: { id: sandboxId, tenantId }, select: { id: true } });
    return row !== null;
  }

  private async lookupStoredKey(key: string): Promise<Principal | null> {
    const hash = sha256Hex(key);
    const now = Date.now();
    const cached = this.cache.get(hash);
    if (cached && cached.expires > now) return cached.principal;
    await this.db.ready;
    const row = await this.db.prisma.apiKey.findUnique({ where: { keyHash: hash }, select: { id: true, tenantId: true, revokedAt: true } });
    const principal = row && !row.revokedAt ? { tenantId: row.tenantId, keyId: row.id } : null;
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(hash, { principal, expires: now + (principal ? HIT_TTL_MS : MISS_TTL_MS) });
    return principal;
  }
}
