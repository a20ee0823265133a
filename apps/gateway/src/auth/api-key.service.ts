import { Inject, Injectable, Logger } from '@nestjs/common';
import { BERTH_CONFIG, isLoopbackHost } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { constantTimeEqual, sha256Hex } from '@berth/crypto';
import { Database, DEFAULT_TENANT_ID } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';
import { TenancyEpoch } from '../quotas/tenancy-epoch';

const HIT_TTL_MS = 30_000;
const MISS_TTL_MS = 5_000;
const CACHE_LIMIT = 10_000;
/** `last_used_at` is written at most this often per key (and replica). */
const LAST_USED_EVERY_MS = 60_000;

/** Index of `key` in `keys`, or -1: every key is compared, in constant time, so timing tells nothing. */
export function indexOfKey(keys: string[], key: string): number {
  let match = -1;
  keys.forEach((k, i) => {
    if (constantTimeEqual(k, key) && match < 0) match = i;
  });
  return match;
}

interface CachedKey {
  principal: Principal | null;
  /** when the key itself expires (expires_at), ms; Infinity when it never does */
  keyExpires: number;
  cachedUntil: number;
}

/**
 * Resolves an X-Session-API-Key to its tenant. The OH_SESSION_API_KEYS_* keys belong to the default
 * tenant and are compared in constant time; tenant keys are looked up by SHA-256 (they are never
 * stored in clear) and cached briefly, misses included, so a flood of bad keys cannot load the
 * database. The cache is dropped whenever the tenancy epoch moved (a key revoked or a tenant deleted
 * on any replica), so a revocation holds from the next request on.
 */
@Injectable()
export class ApiKeyService {
  private readonly logger = new Logger('Auth');
  private readonly cache = new Map<string, CachedKey>();
  private cacheEpoch = -1;
  private readonly lastUsedWrites = new Map<string, number>();

  constructor(
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
    private readonly db: Database,
    private readonly epoch: TenancyEpoch,
  ) {
    if (this.isOpen && !isLoopbackHost(config.host)) {
      this.logger.warn(
        `NO API KEY IS CONFIGURED and the server listens on ${config.host}: anyone who can reach it can run ` +
          `commands. Set OH_SESSION_API_KEYS_0 (or SESSION_API_KEY).`,
      );
    }
  }

  /**
   * No key configured: every request is let in as the default tenant, as OpenHands does. Admin keys
   * count as configured: a server that manages tenants is never open.
   */
  get isOpen(): boolean {
    return this.config.sessionApiKeys.length === 0 && this.config.adminApiKeys.length === 0;
  }

  async resolve(key: string | undefined): Promise<Principal | null> {
    if (key) {
      const match = indexOfKey(this.config.sessionApiKeys, key);
      if (match >= 0) return { tenantId: DEFAULT_TENANT_ID, keyId: `env:${match}` };
      const stored = await this.lookupStoredKey(key);
      if (stored) return stored;
    }
    return this.isOpen ? { tenantId: DEFAULT_TENANT_ID, keyId: 'open' } : null;
  }


  private async lookupStoredKey(key: string): Promise<Principal | null> {
    const hash = sha256Hex(key);
    const epoch = await this.epoch.current();
    if (epoch !== this.cacheEpoch) {
      this.cache.clear();
      this.cacheEpoch = epoch;
    }
    const now = Date.now();
    let cached = this.cache.get(hash);
    if (!cached || cached.cachedUntil <= now) {
      await this.db.ready;
      const row = await this.db.prisma.apiKey.findUnique({ where: { keyHash: hash }, select: { id: true, tenantId: true, revokedAt: true, expiresAt: true } });
      const principal = row && !row.revokedAt ? { tenantId: row.tenantId, keyId: row.id } : null;
      cached = { principal, keyExpires: row?.expiresAt?.getTime() ?? Infinity, cachedUntil: now + (principal ? HIT_TTL_MS : MISS_TTL_MS) };
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(hash, cached);
    }
    if (!cached.principal || cached.keyExpires <= now) return null;
    this.noteUse(cached.principal.keyId, now);
    return cached.principal;
  }

  /** Records that a key was used, without a write per request. */
  private noteUse(keyId: string, now: number): void {
    if (now - (this.lastUsedWrites.get(keyId) ?? 0) < LAST_USED_EVERY_MS) return;
    if (this.lastUsedWrites.size >= CACHE_LIMIT) this.lastUsedWrites.clear();
    this.lastUsedWrites.set(keyId, now);
    this.db.prisma.apiKey
      .updateMany({ where: { id: keyId }, data: { lastUsedAt: new Date(now) } })
      .catch((err: Error) => this.logger.warn(`could not record the use of key ${keyId}: ${err.message}`));
  }
}
