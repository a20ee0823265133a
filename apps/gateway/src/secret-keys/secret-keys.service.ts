import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { SecretVault } from '@berth/crypto';
import { Database, SECRET_STORES, SecretStore, StoredSecretsRepository } from '@berth/persistence';

/** Rows read per query of the pass. */
const PAGE_ROWS = 200;

/** What the pass found in one store. */
export interface StoreScan {
  store: string;
  rows: number;
  rekeyed: number;
  unreadable: number;
  /** stopped at BERTH_SECRET_SCAN_ROWS with rows left unread */
  truncated: boolean;
}

const counted = (scans: StoreScan[], field: 'rekeyed' | 'unreadable') =>
  scans
    .filter((s) => s[field] > 0)
    .map((s) => `${s.store} ${s[field]}`)
    .join(', ');

/**
 * The server's secret keys at start-up: says where the key comes from when a session key doubles
 * as it, then reads the stored secrets in the background (BERTH_SECRET_SCAN_ROWS rows per store) —
 * those sealed with an OH_PREVIOUS_SECRET_KEYS key are re-encrypted under the current one, and
 * those no configured key opens are counted in a warning. The server starts either way: a secret
 * no key opens answers 409 where it is used, and setting it again heals it.
 */
@Injectable()
export class SecretKeysService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('SecretKeys');
  private stopping = false;
  /** The start-up pass; its findings once done (null when there was no pass or it failed). */
  pass: Promise<StoreScan[] | null> = Promise.resolve(null);

  constructor(
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
    private readonly vault: SecretVault,
    private readonly db: Database,
    private readonly stores: StoredSecretsRepository,
  ) {}

  onApplicationBootstrap(): void {
    const source = this.config.secretKeySource;
    if (source === 'SESSION_API_KEY' || source === 'OH_SESSION_API_KEYS') {
      this.logger.warn(
        `OH_SECRET_KEY is not set: stored secrets are encrypted with the first session API key (${source}). ` +
          'Rotating that key makes them unreadable unless the old key is kept in OH_PREVIOUS_SECRET_KEYS; set OH_SECRET_KEY to keep the two apart.',
      );
    }
    if (this.config.secretScanRows === 0) return;
    this.pass = this.db.ready
      .then(() => this.scan())
      .then((scans) => (this.report(scans), scans))
      .catch((err: Error) => {
        this.logger.warn(`stored secrets were not checked: ${err.message}`);
        return null;
      });
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    await this.pass;
  }

  /** Every store, one after the other (one connection, a page at a time: requests keep the pool). */
  private async scan(): Promise<StoreScan[]> {
    const scans: StoreScan[] = [];
    for (const store of SECRET_STORES) {
      if (this.stopping) break;
      scans.push(await this.scanStore(store));
    }
    return scans;
  }

  private async scanStore(store: SecretStore): Promise<StoreScan> {
    const scan: StoreScan = { store: store.name, rows: 0, rekeyed: 0, unreadable: 0, truncated: false };
    let after: string[] | null = null;
    while (!this.stopping) {
      const limit = Math.min(PAGE_ROWS, this.config.secretScanRows - scan.rows);
      if (limit === 0) {
        scan.truncated = (await this.stores.page(store, after, 1)).length > 0;
        break;
      }
      const rows = await this.stores.page(store, after, limit);
      for (const row of rows) {
        const stored: unknown = store.type === 'text' ? row.text : JSON.parse(row.text);
        const resealed = this.vault.resealTokens(stored);
        scan.unreadable += resealed.unreadable;
        if (resealed.rekeyed === 0) continue;
        const next = store.type === 'text' ? (resealed.value as string) : JSON.stringify(resealed.value);
        // Lost to a concurrent write (another replica's pass, a request): that row is current now.
        if (await this.stores.replace(store, row.key, row.text, next)) scan.rekeyed += resealed.rekeyed;
      }
      scan.rows += rows.length;
      if (rows.length < limit) break;
      after = rows[rows.length - 1].key;
    }
    return scan;
  }

  private report(scans: StoreScan[]): void {
    const rekeyed = scans.reduce((n, s) => n + s.rekeyed, 0);
    const unreadable = scans.reduce((n, s) => n + s.unreadable, 0);
    const truncated = scans.filter((s) => s.truncated).map((s) => s.store);
    const unread = truncated.length ? ` Only the first ${this.config.secretScanRows} rows of ${truncated.join(', ')} were read (BERTH_SECRET_SCAN_ROWS).` : '';
    if (rekeyed > 0) this.logger.log(`re-encrypted ${rekeyed} stored secrets under the current key (${counted(scans, 'rekeyed')})`);
    if (unreadable > 0) {
      this.logger.warn(
        `${unreadable} stored secrets open with no configured key (${counted(scans, 'unreadable')}): requests that need them answer 409. ` +
          'Set OH_SECRET_KEY to the key they were stored under or add it to OH_PREVIOUS_SECRET_KEYS, or set those secrets again.' +
          unread,
      );
    } else if (this.vault.hasPreviousKeys) {
      this.logger.log(
        truncated.length
          ? `stored secrets read open with the current key; keep OH_PREVIOUS_SECRET_KEYS until the rest are re-encrypted.${unread}`
          : 'every stored secret opens with the current key: OH_PREVIOUS_SECRET_KEYS can be dropped once every replica runs with this key',
      );
    }
  }
}
