import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { OHEvent } from '@berth/contracts';
import { Database, DEFAULT_TENANT_ID } from './database';
import { EventLog } from './event-log';

const STORAGES = [
  { name: 'embedded', url: () => null },
  { name: 'postgres', url: () => process.env.BERTH_TEST_DATABASE_URL as string },
];

describe.each(STORAGES)('EventLog ($name)', ({ url }) => {
  let dataDir: string;
  let db: Database;
  let log: EventLog;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-event-log-'));
    db = new Database({ databaseUrl: url(), dataDir });
    await db.ready;
    log = new EventLog(db);
  });
  afterAll(async () => {
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const conversation = async () => {
    const id = randomUUID();
    await db.prisma.conversation.create({ data: { id, tenantId: DEFAULT_TENANT_ID, agent: {}, workspace: {}, confirmationPolicy: {} } });
    return id;
  };
  const message = (timestamp: string, text: string): OHEvent =>
    ({ kind: 'MessageEvent', id: randomUUID(), timestamp, source: 'user', llm_message: { role: 'user', content: [{ type: 'text', text }] } }) as unknown as OHEvent;

  it('never stores an event stamped before the one appended ahead of it: it takes that timestamp', async () => {
    const id = await conversation();
    const newer = message('2026-12-07T10:00:00.000200', 'written first, stamped later');
    const older = message('2026-12-07T10:00:00.000100', 'stamped earlier, written second');
    const later = message('2026-12-07T10:00:00.000300', 'in order');
    expect(await log.append(id, newer)).toBe(1);
    expect(await log.append(id, older)).toBe(2);
    expect(await log.append(id, later)).toBe(3);

    // The caller's event (which it publishes next) carries what was stored.
    expect(older.timestamp).toBe('2026-12-07T10:00:00.000200');
    const stored = await log.range(id, 0, 3, 10);
    expect(stored.map((s) => s.event.timestamp)).toEqual(['2026-12-07T10:00:00.000200', '2026-12-07T10:00:00.000200', '2026-12-07T10:00:00.000300']);
    expect(stored[1].event).toEqual(older);
    // The indexed column (timestamp filters) agrees with the payload.
    const columns = await db.prisma.event.findMany({ where: { conversationId: id }, orderBy: { seq: 'asc' }, select: { timestamp: true } });
    expect(columns.map((c) => c.timestamp)).toEqual(stored.map((s) => s.event.timestamp));
  });
});
