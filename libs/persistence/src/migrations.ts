import { createHash, randomUUID } from 'node:crypto';
import { projectRoot } from '@berth/config';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The minimum a database connection must offer to run migrations. */
export interface MigrationTarget {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements. */
  exec(sql: string): Promise<void>;
}

export const MIGRATIONS_DIR = join(projectRoot(), 'prisma', 'migrations');

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/**
 * Applies pending migrations, each in its own transaction, and records them in Prisma's own
 * `_prisma_migrations` table (same columns, sha256 checksums) so that `prisma migrate deploy` run by
 * an operator and this runner agree on what is applied. Idempotent; returns the names it applied.
 */
export async function applyMigrations(db: MigrationTarget, dir = MIGRATIONS_DIR): Promise<string[]> {
  // Looked up rather than `CREATE TABLE IF NOT EXISTS`, which needs CREATE on the schema even when
  // the table exists: processes whose database was migrated beforehand (the chart's migration Job)
  // then run without any DDL right.
  const [{ present }] = await db.query<{ present: boolean }>(`SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS present`);
  if (!present) await db.exec(`CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
  )`);
  const rows = await db.query<{ migration_name: string; checksum: string }>(
    `SELECT migration_name, checksum FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
  );
  const applied = new Map(rows.map((r) => [r.migration_name, r.checksum]));
  const done: string[] = [];
  for (const m of listMigrations(dir)) {
    const previous = applied.get(m.name);
    if (previous !== undefined) {
      if (previous !== m.checksum) {
        throw new Error(`migration ${m.name} was changed after it was applied (checksum mismatch); add a new migration instead`);
      }
      continue;
    }
    const id = randomUUID();
    const name = m.name.replace(/'/g, "''");
    try {
      await db.exec(
        `BEGIN;\n${m.sql}\n;INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count) ` +
          `VALUES ('${id}', '${m.checksum}', now(), '${name}', 1);\nCOMMIT;`,
      );
    } catch (err) {
      // Leave the connection usable (and its locks releasable) rather than in an aborted transaction.
      await db.exec('ROLLBACK').catch(() => undefined);
      throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
    }
    done.push(m.name);
  }
  return done;
}
