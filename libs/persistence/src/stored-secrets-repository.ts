import { Database } from './database';

/** A column that holds Fernet tokens: a text column is one token, a JSON column has them at any depth. */
export interface SecretStore {
  /** `table.column`, as logs and operators name it */
  readonly name: string;
  readonly table: string;
  readonly column: string;
  readonly type: 'text' | 'json' | 'jsonb';
  /** the primary key, in index order, with each column's type */
  readonly key: readonly { column: string; type: 'uuid' | 'text' }[];
}

const tenantKey = { column: 'tenant_id', type: 'uuid' } as const;
const idKey = { column: 'id', type: 'uuid' } as const;
const store = (table: string, column: string, type: SecretStore['type'], key: SecretStore['key']): SecretStore => ({ name: `${table}.${column}`, table, column, type, key });

/**
 * Every column Berth seals secrets into (SecretVault, SettingsVault, SandboxManager): the secrets
 * store, provider connections, settings and profile LLM keys, conversations' agents and secrets, and
 * sandboxes' variables and executor tokens.
 */
export const SECRET_STORES: readonly SecretStore[] = [
  store('tenant_secrets', 'value', 'text', [tenantKey, { column: 'name', type: 'text' }]),
  store('provider_connections', 'api_key', 'text', [tenantKey, { column: 'id', type: 'text' }]),
  store('tenant_settings', 'agent_settings', 'jsonb', [tenantKey]),
  store('llm_profiles', 'llm', 'jsonb', [tenantKey, { column: 'name', type: 'text' }]),
  store('agent_profiles', 'profile', 'jsonb', [idKey]),
  store('conversations', 'agent', 'json', [idKey]),
  store('conversations', 'secrets', 'json', [idKey]),
  store('sandboxes', 'env', 'jsonb', [idKey]),
  store('sandboxes', 'handle', 'jsonb', [idKey]),
];

/** A row of a store: its key (as text, for the next page) and the column's stored text. */
export interface SecretStoreRow {
  key: string[];
  text: string;
}

/** Fernet tokens are url-safe base64 beginning with the version byte 0x80 and a timestamp's zero bytes. */
const TOKEN_PREFIX = 'gAAAAA';

/**
 * Reads and rewrites the sealed columns across tenants, for the start-up pass that re-encrypts
 * secrets under the current key (SecretKeysService). Rows come in primary-key order, only those
 * whose column holds something that looks like a token.
 */
export class StoredSecretsRepository {
  constructor(private readonly db: Database) {}

  /** Up to `limit` rows of `s` after the key `after` (null: from the start). */
  async page(s: SecretStore, after: string[] | null, limit: number): Promise<SecretStoreRow[]> {
    const keys = s.key.map((k) => `"${k.column}"`).join(', ');
    const params: unknown[] = [TOKEN_PREFIX, limit];
    let from = '';
    if (after) {
      from = `AND (${keys}) > (${s.key.map((k, i) => `$${i + 3}::${k.type}`).join(', ')})`;
      params.push(...after);
    }
    const rows = await this.db.prisma.$queryRawUnsafe<Record<string, string>[]>(
      `SELECT ${s.key.map((k, i) => `"${k.column}"::text AS k${i}`).join(', ')}, "${s.column}"::text AS text
         FROM "${s.table}" WHERE position($1 in "${s.column}"::text) > 0 ${from}
         ORDER BY ${keys} LIMIT $2`,
      ...params,
    );
    return rows.map((r) => ({ key: s.key.map((_, i) => r[`k${i}`]), text: r.text }));
  }

  /**
   * Writes `next` where the column still holds `previous` exactly: a row another replica re-keyed,
   * or a request changed, meanwhile is left as it is. False when nothing was written.
   */
  async replace(s: SecretStore, key: string[], previous: string, next: string): Promise<boolean> {
    const where = s.key.map((k, i) => `"${k.column}" = $${i + 3}::${k.type}`).join(' AND ');
    const value = s.type === 'text' ? '$1' : `$1::${s.type}`;
    const count = await this.db.prisma.$executeRawUnsafe(
      `UPDATE "${s.table}" SET "${s.column}" = ${value} WHERE ${where} AND "${s.column}"::text = $2`,
      next,
      previous,
      ...key,
    );
    return count > 0;
  }
}
