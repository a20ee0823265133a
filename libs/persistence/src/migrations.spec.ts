import { PrismaPg } from '@prisma/adapter-pg';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { PrismaClient } from './generated/prisma/client';
import { applyMigrations, listMigrations, MIGRATIONS_DIR, MigrationTarget } from './migrations';

/**
 * Runs the real migrations against a PostgreSQL database of its own, then checks that the Prisma
 * schema (what the generated client believes) and the migrated database agree: tables, columns,
 * types, nullability, defaults, indexes and foreign keys.
 */

const ADMIN_URL = process.env.BERTH_TEST_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const DB_NAME = `berth_mig_${randomBytes(6).toString('hex')}`;
const DB_URL = (() => {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${DB_NAME}`;
  return url.toString();
})();
const SCHEMA_FILE = join(MIGRATIONS_DIR, '..', 'schema.prisma');

function targetOf(client: Client): MigrationTarget {
  return {
    query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
    exec: async (sql: string) => void (await client.query(sql)),
  };
}

const fileChecksum = (name: string) =>
  createHash('sha256')
    .update(readFileSync(join(MIGRATIONS_DIR, name, 'migration.sql')))
    .digest('hex');

let admin: Client;
let db: Client;
let target: MigrationTarget;

beforeAll(async () => {
  admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${DB_NAME}"`);
  db = new Client({ connectionString: DB_URL });
  await db.connect();
  target = targetOf(db);
});

afterAll(async () => {
  await db?.end();
  if (admin) {
    await admin.query(`DROP DATABASE IF EXISTS "${DB_NAME}" WITH (FORCE)`);
    await admin.end();
  }
});

describe('applyMigrations', () => {
  it('lists the migration folders in name order, each with the sha256 of its file', () => {
    const folders = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    expect(folders.length).toBeGreaterThan(0);
    const listed = listMigrations();
    expect(listed.map((m) => m.name)).toEqual(folders);
    for (const m of listed) {
      expect(m.checksum).toBe(fileChecksum(m.name));
      expect(m.sql).toBe(readFileSync(join(MIGRATIONS_DIR, m.name, 'migration.sql'), 'utf8'));
    }
  });

  it('applies every migration once, then nothing', async () => {
    const names = listMigrations().map((m) => m.name);
    expect(await applyMigrations(target)).toEqual(names);
    expect(await applyMigrations(target)).toEqual([]);
  });

  it("records applied migrations in Prisma's _prisma_migrations table", async () => {
    const rows = (
      await db.query<{
        id: string;
        checksum: string;
        finished_at: Date | null;
        migration_name: string;
        logs: string | null;
        rolled_back_at: Date | null;
        started_at: Date;
        applied_steps_count: number;
      }>('SELECT * FROM "_prisma_migrations" ORDER BY migration_name')
    ).rows;
    expect(rows.map((r) => r.migration_name)).toEqual(listMigrations().map((m) => m.name));
    for (const row of rows) {
      expect(row.checksum).toBe(fileChecksum(row.migration_name));
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);

    // Same table layout as `prisma migrate deploy` creates, so the two can take turns.
    const columns = (
      await db.query(
        `SELECT column_name, data_type, is_nullable, character_maximum_length FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = '_prisma_migrations' ORDER BY ordinal_position`,
      )
    ).rows;
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'character varying', is_nullable: 'NO', character_maximum_length: 36 },
      { column_name: 'checksum', data_type: 'character varying', is_nullable: 'NO', character_maximum_length: 64 },
      { column_name: 'finished_at', data_type: 'timestamp with time zone', is_nullable: 'YES', character_maximum_length: null },
      { column_name: 'migration_name', data_type: 'character varying', is_nullable: 'NO', character_maximum_length: 255 },
      { column_name: 'logs', data_type: 'text', is_nullable: 'YES', character_maximum_length: null },
      { column_name: 'rolled_back_at', data_type: 'timestamp with time zone', is_nullable: 'YES', character_maximum_length: null },
      { column_name: 'started_at', data_type: 'timestamp with time zone', is_nullable: 'NO', character_maximum_length: null },
      { column_name: 'applied_steps_count', data_type: 'integer', is_nullable: 'NO', character_maximum_length: null },
    ]);
  });

  it('refuses to continue when an applied migration was changed afterwards', async () => {
    const [first] = listMigrations();
    await db.query(`UPDATE "_prisma_migrations" SET checksum = $1 WHERE migration_name = $2`, ['0'.repeat(64), first.name]);
    try {
      await expect(applyMigrations(target)).rejects.toThrow(/checksum/);
      await expect(applyMigrations(target)).rejects.toThrow(first.name);
    } finally {
      await db.query(`UPDATE "_prisma_migrations" SET checksum = $1 WHERE migration_name = $2`, [first.checksum, first.name]);
    }
    expect(await applyMigrations(target)).toEqual([]);
  });

  it('ignores rows of migrations that were rolled back or never finished', async () => {
    const [first] = listMigrations();
    await db.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, rolled_back_at)
       VALUES ($1, $2, now(), $3, now()), ($4, $2, NULL, $3, NULL)`,
      ['00000000-0000-4000-8000-00000000aaaa', '1'.repeat(64), first.name, '00000000-0000-4000-8000-00000000bbbb'],
    );
    try {
      // The stale checksums in those rows are not held against the applied migration.
      expect(await applyMigrations(target)).toEqual([]);
    } finally {
      await db.query(`DELETE FROM "_prisma_migrations" WHERE id IN ($1, $2)`, [
        '00000000-0000-4000-8000-00000000aaaa',
        '00000000-0000-4000-8000-00000000bbbb',
      ]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Schema drift: prisma/schema.prisma + generated client  <->  the migrated database
// ---------------------------------------------------------------------------------------------

interface RuntimeField {
  name: string;
  kind: 'scalar' | 'object' | 'enum' | 'unsupported';
  type: string;
  dbName?: string | null;
}
interface RuntimeDataModel {
  models: Record<string, { dbName: string | null; fields: RuntimeField[] }>;
  enums: Record<string, unknown>;
}

interface SchemaField {
  name: string;
  type: string;
  list: boolean;
  optional: boolean;
  attrs: string;
  column: string;
}
interface SchemaModel {
  name: string;
  table: string;
  fields: SchemaField[];
  blockAttrs: string[];
}

const SCALARS = new Set(['String', 'Int', 'BigInt', 'Boolean', 'DateTime', 'Json', 'Float', 'Decimal', 'Bytes']);

function stripComment(line: string): string {
  const t = line.trim();
  if (t.startsWith('//')) return '';
  // a trailing comment (no quote after it, so not inside a string literal)
  return t.replace(/\s+\/\/[^"]*$/, '');
}

/** The list inside the first `[...]` of an attribute, as bare field names (`a(sort: Desc)` → `a`). */
function fieldList(text: string): string[] {
  const inner = /\[([^\]]*)\]/.exec(text)?.[1] ?? '';
  return inner
    .split(',')
    .map((s) => s.trim().match(/^\w+/)?.[0] ?? '')
    .filter(Boolean);
}

function parseSchema(text: string): SchemaModel[] {
  const models: SchemaModel[] = [];
  for (const m of text.matchAll(/^model\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
    const model: SchemaModel = { name: m[1], table: m[1], fields: [], blockAttrs: [] };
    for (const raw of m[2].split('\n')) {
      const line = stripComment(raw);
      if (!line) continue;
      if (line.startsWith('@@')) {
        model.blockAttrs.push(line);
        const map = /^@@map\(\s*"([^"]+)"/.exec(line);
        if (map) model.table = map[1];
        continue;
      }
      const f = /^(\w+)\s+(\w+)(\[\])?(\?)?(?:\s+(.*))?$/.exec(line);
      if (!f) throw new Error(`schema.prisma: cannot parse line in model ${model.name}: ${line}`);
      const attrs = f[5] ?? '';
      model.fields.push({
        name: f[1],
        type: f[2],
        list: Boolean(f[3]),
        optional: Boolean(f[4]),
        attrs,
        column: /@map\(\s*"([^"]+)"/.exec(attrs)?.[1] ?? f[1],
      });
    }
    models.push(model);
  }
  return models;
}

interface DbColumn {
  table_name: string;
  column_name: string;
  data_type: string;
  is_nullable: 'YES' | 'NO';
  column_default: string | null;
  datetime_precision: number | null;
  character_maximum_length: number | null;
}

interface ExpectedType {
  dataType: string;
  precision?: number;
  length?: number;
}

function expectedType(model: string, field: SchemaField): ExpectedType {
  const native = /@db\.(\w+)(?:\((\d+)\))?/.exec(field.attrs);
  const nativeName = native?.[1];
  const arg = native?.[2] === undefined ? undefined : Number(native[2]);
  if (field.list) return { dataType: 'ARRAY' };
  switch (field.type) {
    case 'String':
      if (nativeName === 'Uuid') return { dataType: 'uuid' };
      if (nativeName === 'VarChar') return { dataType: 'character varying', length: arg };
      if (nativeName === 'Char') return { dataType: 'character', length: arg };
      if (!nativeName || nativeName === 'Text') return { dataType: 'text' };
      break;
    case 'Int':
      if (!nativeName || nativeName === 'Integer') return { dataType: 'integer' };
      if (nativeName === 'SmallInt') return { dataType: 'smallint' };
      break;
    case 'BigInt':
      if (!nativeName || nativeName === 'BigInt') return { dataType: 'bigint' };
      break;
    case 'Boolean':
      return { dataType: 'boolean' };
    case 'Float':
      return { dataType: nativeName === 'Real' ? 'real' : 'double precision' };
    case 'Decimal':
      return { dataType: 'numeric' };
    case 'Bytes':
      return { dataType: 'bytea' };
    case 'DateTime':
      // Prisma's default for DateTime is timestamp(3) without time zone.
      if (!nativeName) return { dataType: 'timestamp without time zone', precision: 3 };
      if (nativeName === 'Timestamptz') return { dataType: 'timestamp with time zone', precision: arg ?? 6 };
      if (nativeName === 'Timestamp') return { dataType: 'timestamp without time zone', precision: arg ?? 6 };
      if (nativeName === 'Date') return { dataType: 'date' };
      break;
    case 'Json':
      return { dataType: nativeName === 'Json' ? 'json' : 'jsonb' };
  }
  throw new Error(`drift test: no PostgreSQL type mapping for ${model}.${field.name} (${field.type} ${nativeName ?? ''})`);
}

/** What `@default(...)` must look like in information_schema.columns.column_default. */
function defaultMatches(field: SchemaField, columnDefault: string | null): boolean {
  const d = /@default\((.*?)\)(?=\s+@|\s*$)/.exec(field.attrs)?.[1];
  if (d === undefined) return columnDefault === null;
  if (columnDefault === null) return false;
  if (d === 'now()') return /^(CURRENT_TIMESTAMP|now\(\))$/i.test(columnDefault);
  if (d === 'autoincrement()') return /^nextval\(/.test(columnDefault);
  if (/^(true|false|-?\d+(\.\d+)?)$/.test(d)) return columnDefault === d || columnDefault === `'${d}'::${columnDefault.split('::')[1]}`;
  if (d.startsWith('"')) {
    const value = JSON.parse(d) as string;
    return columnDefault.startsWith(`'${value.replace(/'/g, "''")}'::`);
  }
  throw new Error(`drift test: unsupported default ${d} on ${field.name}`);
}

const ON_ACTION: Record<string, string> = { Cascade: 'c', SetNull: 'n', Restrict: 'r', NoAction: 'a', SetDefault: 'd' };

describe('schema drift', () => {
  let runtime: RuntimeDataModel;
  let inlineSchema: string;
  let schema: SchemaModel[];
  let columns: DbColumn[];

  beforeAll(async () => {
    await applyMigrations(target);
    // The generated client's own view of the data model (it does not connect for this).
    const client = new PrismaClient({ adapter: new PrismaPg({ connectionString: DB_URL }) }) as unknown as {
      _runtimeDataModel: RuntimeDataModel;
      _engineConfig: { inlineSchema: string };
      $disconnect(): Promise<void>;
    };
    runtime = client._runtimeDataModel;
    inlineSchema = client._engineConfig.inlineSchema;
    await client.$disconnect();
    schema = parseSchema(readFileSync(SCHEMA_FILE, 'utf8'));
    columns = (
      await db.query<DbColumn>(
        `SELECT table_name, column_name, data_type, is_nullable, column_default, datetime_precision, character_maximum_length
         FROM information_schema.columns WHERE table_schema = 'public'`,
      )
    ).rows;
  });

  it('the generated client was generated from the current prisma/schema.prisma (run `npm install` if not)', () => {
    const normalise = (s: string) => s.replace(/[ \t]+/g, ' ').replace(/ *\n */g, '\n').trim();
    expect(typeof inlineSchema).toBe('string');
    expect(normalise(inlineSchema)).toBe(normalise(readFileSync(SCHEMA_FILE, 'utf8')));
  });

  it('the runtime data model and the parsed schema describe the same models and columns', () => {
    expect(Object.keys(runtime.models).length).toBeGreaterThan(0);
    expect(Object.keys(runtime.enums)).toEqual([]);
    expect(Object.keys(runtime.models).sort()).toEqual(schema.map((m) => m.name).sort());
    for (const model of schema) {
      const rt = runtime.models[model.name];
      expect({ model: model.name, table: rt.dbName ?? model.name }).toEqual({ model: model.name, table: model.table });
      const rtScalars = rt.fields.filter((f) => f.kind === 'scalar').map((f) => `${f.name}:${f.type}:${f.dbName ?? f.name}`);
      const parsed = model.fields.filter((f) => SCALARS.has(f.type)).map((f) => `${f.name}:${f.type}:${f.column}`);
      expect({ model: model.name, scalars: parsed }).toEqual({ model: model.name, scalars: rtScalars });
      const rtRelations = rt.fields.filter((f) => f.kind === 'object').map((f) => f.name);
      expect(model.fields.filter((f) => !SCALARS.has(f.type)).map((f) => f.name)).toEqual(rtRelations);
    }
  });

  it('the database has exactly one table per model (plus _prisma_migrations)', async () => {
    const tables = (
      await db.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`,
      )
    ).rows.map((r) => r.table_name);
    expect(tables.sort()).toEqual([...schema.map((m) => m.table), '_prisma_migrations'].sort());
  });

  it('every scalar field has its column, with the right type, nullability and default, and no column is unknown', () => {
    const problems: string[] = [];
    for (const model of schema) {
      const scalars = model.fields.filter((f) => SCALARS.has(f.type));
      const dbCols = columns.filter((c) => c.table_name === model.table);
      for (const field of scalars) {
        const where = `${model.name}.${field.name} (${model.table}.${field.column})`;
        const col = dbCols.find((c) => c.column_name === field.column);
        if (!col) {
          problems.push(`${where}: column missing`);
          continue;
        }
        const want = expectedType(model.name, field);
        if (col.data_type !== want.dataType) problems.push(`${where}: type ${col.data_type}, schema wants ${want.dataType}`);
        if (want.precision !== undefined && col.datetime_precision !== want.precision) {
          problems.push(`${where}: precision ${col.datetime_precision}, schema wants ${want.precision}`);
        }
        if (want.length !== undefined && col.character_maximum_length !== want.length) {
          problems.push(`${where}: length ${col.character_maximum_length}, schema wants ${want.length}`);
        }
        const nullable = col.is_nullable === 'YES';
        if (nullable !== field.optional) problems.push(`${where}: ${nullable ? 'NULL' : 'NOT NULL'} in the database, schema says ${field.optional ? 'optional' : 'required'}`);
        if (!defaultMatches(field, col.column_default)) problems.push(`${where}: default ${col.column_default} does not match ${field.attrs}`);
      }
      for (const col of dbCols) {
        if (!scalars.some((f) => f.column === col.column_name)) problems.push(`${model.table}.${col.column_name}: column unknown to the schema`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('primary keys, unique constraints and indexes match (@id, @@id, @unique, @@unique, @@index)', async () => {
    const rows = (
      await db.query<{ table_name: string; index_name: string; is_unique: boolean; is_primary: boolean; columns: string[] }>(
        `SELECT t.relname AS table_name, i.relname AS index_name, ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
                ARRAY(SELECT a.attname FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns
         FROM pg_index ix
         JOIN pg_class t ON t.oid = ix.indrelid
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'public' AND t.relname <> '_prisma_migrations'`,
      )
    ).rows;
    const actual = rows
      .map((r) => `${r.table_name}: ${r.is_primary ? 'primary' : r.is_unique ? 'unique' : 'index'}(${r.columns.join(',')}) ${r.index_name}`)
      .sort();

    const expected: string[] = [];
    for (const model of schema) {
      const col = (field: string) => {
        const f = model.fields.find((x) => x.name === field);
        if (!f) throw new Error(`schema.prisma: ${model.name} has no field ${field}`);
        return f.column;
      };
      const add = (kind: 'primary' | 'unique' | 'index', cols: string[], attr: string) => {
        const suffix = kind === 'primary' ? 'pkey' : kind === 'unique' ? 'key' : 'idx';
        const name = /map:\s*"([^"]+)"/.exec(attr)?.[1] ?? (kind === 'primary' ? `${model.table}_pkey` : `${model.table}_${cols.join('_')}_${suffix}`);
        expected.push(`${model.table}: ${kind}(${cols.join(',')}) ${name}`);
      };
      for (const f of model.fields) {
        if (/@id\b/.test(f.attrs)) add('primary', [f.column], f.attrs);
        if (/@unique\b/.test(f.attrs)) add('unique', [f.column], f.attrs);
      }
      for (const attr of model.blockAttrs) {
        const kind = /^@@(id|unique|index)\(/.exec(attr)?.[1];
        if (!kind) continue;
        add(kind === 'id' ? 'primary' : (kind as 'unique' | 'index'), fieldList(attr).map(col), attr);
      }
    }
    expect(expected.length).toBeGreaterThan(schema.length);
    expect(actual).toEqual(expected.sort());
  });

  it('foreign keys match the @relation attributes (columns, target, onDelete, onUpdate)', async () => {
    const rows = (
      await db.query<{ table_name: string; name: string; ref_table: string; on_delete: string; on_update: string; columns: string[]; ref_columns: string[] }>(
        `SELECT c.conrelid::regclass::text AS table_name, c.conname AS name, c.confrelid::regclass::text AS ref_table,
                c.confdeltype AS on_delete, c.confupdtype AS on_update,
                ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns,
                ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS ref_columns
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE c.contype = 'f' AND n.nspname = 'public'`,
      )
    ).rows;
    const actual = rows
      .map((r) => `${r.table_name}(${r.columns.join(',')}) -> ${r.ref_table}(${r.ref_columns.join(',')}) del=${r.on_delete} upd=${r.on_update} ${r.name}`)
      .sort();

    const byName = new Map(schema.map((m) => [m.name, m]));
    const expected: string[] = [];
    for (const model of schema) {
      for (const f of model.fields) {
        const rel = /@relation\(([^)]*)\)/.exec(f.attrs)?.[1];
        if (!rel || !/fields:/.test(rel)) continue;
        const target = byName.get(f.type)!;
        const colOf = (m: SchemaModel, name: string) => m.fields.find((x) => x.name === name)!.column;
        const cols = fieldList(/fields:\s*(\[[^\]]*\])/.exec(rel)![1]).map((n) => colOf(model, n));
        const refs = fieldList(/references:\s*(\[[^\]]*\])/.exec(rel)![1]).map((n) => colOf(target, n));
        const onDelete = /onDelete:\s*(\w+)/.exec(rel)?.[1] ?? (f.optional ? 'SetNull' : 'Restrict');
        const onUpdate = /onUpdate:\s*(\w+)/.exec(rel)?.[1] ?? 'Cascade';
        const name = /map:\s*"([^"]+)"/.exec(rel)?.[1] ?? `${model.table}_${cols.join('_')}_fkey`;
        expected.push(
          `${model.table}(${cols.join(',')}) -> ${target.table}(${refs.join(',')}) del=${ON_ACTION[onDelete]} upd=${ON_ACTION[onUpdate]} ${name}`,
        );
      }
    }
    expect(expected.length).toBeGreaterThan(0);
    expect(actual).toEqual(expected.sort());
  });
});

describe('applyMigrations with later migrations', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.query(`DROP TABLE IF EXISTS "zz_probe_later", "zz_probe_broken"`);
    await db.query(`DELETE FROM "_prisma_migrations" WHERE migration_name LIKE '99990101%'`);
  });

  function addMigration(name: string, sql: string): void {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'migration.sql'), sql);
  }

  it('applies only the new migration on top of the applied ones', async () => {
    addMigration('99990101000000_later', 'CREATE TABLE "zz_probe_later" ("id" INTEGER NOT NULL);\n');
    expect(await applyMigrations(target, dir)).toEqual(['99990101000000_later']);
    expect((await db.query(`SELECT to_regclass('public.zz_probe_later') AS t`)).rows[0].t).toBe('zz_probe_later');
    expect(await applyMigrations(target, dir)).toEqual([]);
  });

  it('a failing migration leaves neither its changes nor a record behind', async () => {
    addMigration('99990101000001_broken', 'CREATE TABLE "zz_probe_broken" ("id" INTEGER);\nSELECT 1 / 0;\n');
    // on a connection of its own: see the report about the connection state after a failure
    const other = new Client({ connectionString: DB_URL });
    await other.connect();
    try {
      await expect(applyMigrations(targetOf(other), dir)).rejects.toThrow(/division by zero/);
    } finally {
      await other.end();
    }
    expect((await db.query(`SELECT to_regclass('public.zz_probe_broken') AS t`)).rows[0].t).toBeNull();
    const recorded = await db.query(`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = '99990101000001_broken'`);
    expect(recorded.rowCount).toBe(0);
    rmSync(join(dir, '99990101000001_broken'), { recursive: true });
    expect(await applyMigrations(target, dir)).toEqual([]);
  });
});
