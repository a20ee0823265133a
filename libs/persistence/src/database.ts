import { Logger } from '@nestjs/common';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { projectRoot } from '@berth/config';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
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
  /** Embedded only: PostgreSQL's shared_buffers in MiB (default EMBEDDED_SHARED_BUFFERS_MB). */
  embeddedSharedBuffersMb?: number;
}

/**
 * PGlite's wasm heap is zeroed page by page as PostgreSQL allocates its shared memory at start, so
 * shared_buffers (128 MB as initdb writes it) is resident from the first second. 16 MB holds the hot
 * pages of a single-node deployment; PGlite reads its files through the OS, whose page cache keeps
 * the rest.
 */
export const EMBEDDED_SHARED_BUFFERS_MB = 16;

const INITDB_SCRIPT = `
const { dir, startParams, module } = JSON.parse(process.env.BERTH_PGLITE_INITDB);
require(module).PGlite.create(dir, { startParams }).then((db) => db.close()).catch((err) => { console.error(err.message); process.exit(1); });`;

/**
 * Creates the embedded cluster in a child process when `dir` holds none yet. PGlite's initdb runs
 * two more wasm instances and copies the whole cluster through memory; in this process that memory
 * would stay mapped until a garbage collection that an idle server may not run for hours. Run once,
 * at first start, before anything else uses the process.
 */
function initEmbeddedDir(dir: string, startParams: string[]): void {
  if (existsSync(join(dir, 'PG_VERSION'))) return;
  const module = join(projectRoot(), 'node_modules/@electric-sql/pglite/dist/index.cjs');
  const child = spawnSync(process.execPath, ['-e', INITDB_SCRIPT], {
    // Nothing of this process's environment (its secrets) is needed there.
    env: { BERTH_PGLITE_INITDB: JSON.stringify({ dir, startParams, module }) },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (child.status !== 0) throw new Error(`embedded database initialisation failed: ${(child.stderr || child.error?.message || `exit ${child.status}`).trim()}`);
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
      const sharedBuffers = options.embeddedSharedBuffersMb ?? EMBEDDED_SHARED_BUFFERS_MB;
      const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffers}MB`];
      initEmbeddedDir(dir, startParams);
      this.pglite = new PGlite(dir, { startParams });
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
