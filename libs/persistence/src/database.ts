import { Logger } from '@nestjs/common';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { PrismaClient } from './generated/prisma/client';
import { applyMigrations, MigrationTarget } from './migrations';

/** Fixed id of the tenant that owns the OH_SESSION_API_KEYS_* keys (and everything in open mode). */
export const DEFAULT_TENANT_ID = '00000000-0000-4000-8000-000000000001';

const MIGRATION_LOCK_ID = 7_415_202_611;

export interface DatabaseOptions {
  databaseUrl: string | null;
  dataDir: string;
  /** PostgreSQL connections this process may hold */
  poolSize?: number;
}

/** How long a transaction may wait for a connection: runs and requests share the pool under load. */
export const TRANSACTION_OPTIONS = { maxWait: 10_000, timeout: 15_000 };

/**
 * PostgreSQL when DATABASE_URL is set, otherwise embedded PostgreSQL (PGlite) under
 * `<dataDir>/db`, with the same schema and migrations. The Prisma client can be handed out at once;
 * `ready` settles when the database is reachable and migrated.
 */
export class Database {
  readonly prisma: PrismaClient;
  readonly kind: 'postgres' | 'embedded';
  readonly ready: Promise<void>;
  private migrated = false;
  private readonly logger = new Logger('Database');
  private readonly pool?: Pool;
  private readonly pglite?: PGlite;

  constructor(options: DatabaseOptions) {
    if (options.databaseUrl) {
      this.kind = 'postgres';
      this.pool = new Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 20 });
      // A dropped idle connection must not crash the process; the pool replaces it.
      this.pool.on('error', (err) => this.logger.warn(`idle PostgreSQL connection failed: ${err.message}`));
      this.prisma = new PrismaClient({ adapter: new PrismaPg(this.pool) });
    } else {
      this.kind = 'embedded';
      const dir = join(options.dataDir, 'db');
      mkdirSync(dir, { recursive: true });
      this.pglite = new PGlite(dir);
      this.prisma = new PrismaClient({ adapter: new PrismaPGlite(this.pglite) });
    }
    this.ready = this.migrate();
    this.ready.catch((err: Error) => this.logger.error(`database initialisation failed: ${err.message}`));
  }

  get isMigrated(): boolean {
    return this.migrated;
  }

  private async migrate(): Promise<void> {
    if (this.pool) {
      const client = await this.pool.connect();
      let failure: Error | undefined;
      try {
        // Replicas starting together take turns; the loser finds everything applied.
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
        const target: MigrationTarget = {
          query: async (sql, params) => (await client.query(sql, params as unknown[])).rows,
          exec: async (sql) => void (await client.query(sql)),
        };
        await this.applyAndSeed(target);
      } catch (err) {
        failure = err as Error;
        throw err;
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
        // A connection that failed mid-migration is discarded, not returned to the pool.
        client.release(failure);
      }
    } else if (this.pglite) {
      await this.pglite.waitReady;
      const db = this.pglite;
      await this.applyAndSeed({
        query: async (sql, params) => (await db.query(sql, params as unknown[])).rows as never[],
        exec: async (sql) => void (await db.exec(sql)),
      });
    }
    this.migrated = true;
  }

  private async applyAndSeed(target: MigrationTarget): Promise<void> {
    const applied = await applyMigrations(target);
    if (applied.length) this.logger.log(`applied migrations: ${applied.join(', ')}`);
    await target.query(
      `INSERT INTO "tenants" (id, name) VALUES ($1, 'default') ON CONFLICT (id) DO NOTHING`,
      [DEFAULT_TENANT_ID],
    );
  }

  /** A cheap round trip, for /ready. */
  async ping(): Promise<void> {
    await this.prisma.$queryRaw`SELECT 1`;
  }

  async close(): Promise<void> {
    await this.ready.catch(() => undefined);
    await this.prisma.$disconnect();
    if (this.pool) await this.pool.end();
    if (this.pglite) await this.pglite.close();
  }
}
