import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database, DEFAULT_TENANT_ID, EMBEDDED_SHARED_BUFFERS_MB } from './database';

describe('Database (embedded)', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-database-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  const setting = async (db: Database, name: string) => ((await db.prisma.$queryRawUnsafe<{ v: string }[]>(`SELECT current_setting('${name}') AS v`))[0].v);

  it('creates its cluster on first start (initdb in a child process), with small shared buffers, and resumes it after', async () => {
    const first = new Database({ databaseUrl: null, dataDir });
    await first.ready;
    expect(await setting(first, 'shared_buffers')).toBe(`${EMBEDDED_SHARED_BUFFERS_MB}MB`);
    await first.prisma.tenant.create({ data: { id: '00000000-0000-4000-8000-0000000000aa', name: 'kept' } });
    await first.close();

    const second = new Database({ databaseUrl: null, dataDir, embeddedSharedBuffersMb: 32 });
    await second.ready;
    expect(await setting(second, 'shared_buffers')).toBe('32MB');
    expect((await second.prisma.tenant.findMany({ orderBy: { name: 'asc' } })).map((t) => t.id)).toEqual([DEFAULT_TENANT_ID, '00000000-0000-4000-8000-0000000000aa']);
    await second.close();
  });
});
