import { BashEvent, BashEventPage, BashEventSearchQuery, bashEventFileName, bashFilterPrefix } from '@berth/contracts/executor';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** OpenHands' event file names: `<20-digit UTC time>_<kind>[_<command_id>]_<event_id>`. */
const FILE_NAME = /^(\d{20})_(BashCommand|BashOutput)(?:_([0-9a-f]{32}))?_([0-9a-f]{32})$/;

let lastMicros = 0;

/**
 * Bash event time: tz-aware UTC ISO with microseconds (`…T04:30:00.123456Z`, fraction omitted when
 * zero, as pydantic writes it), strictly increasing within the process so file names sort in
 * emission order.
 */
export function bashTimestamp(): string {
  // Wall-clock time with the monotonic clock's sub-millisecond resolution.
  const micros = Math.max(Math.floor((performance.timeOrigin + performance.now()) * 1000), lastMicros + 1);
  lastMicros = micros;
  const fraction = micros % 1_000_000;
  const seconds = new Date(Math.floor(micros / 1_000_000) * 1000).toISOString().slice(0, 19);
  return fraction === 0 ? `${seconds}Z` : `${seconds}.${String(fraction).padStart(6, '0')}Z`;
}

/** A bash event id: 32 hex digits (OpenHands' `OpenHandsUUID`). */
export function bashEventId(): string {
  return randomUUID().replace(/-/g, '');
}

function isBashEvent(value: unknown): value is BashEvent {
  const kind = (value as BashEvent | null)?.kind;
  return (kind === 'BashCommand' || kind === 'BashOutput') && typeof (value as BashEvent).id === 'string';
}

/**
 * The durable bash event log: one JSON file per event in `<root>/.berth/bash_events/`, named as
 * OpenHands names them, so search is a directory scan plus a file-name filter, and the log
 * outlives the executor. Files are written whole (temporary file, then rename).
 */
export class BashEventStore {
  /** `order` of BashOutput files already read (files never change). */
  private readonly orders = new Map<string, number | null>();

  constructor(readonly dir: string) {}

  private tmpName(): string {
    return join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
  }

  async save(event: BashEvent): Promise<void> {
    const name = bashEventFileName(event);
    const json = JSON.stringify(event, null, 2);
    const tmp = this.tmpName();
    try {
      await writeFile(tmp, json);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(this.dir, { recursive: true });
      await writeFile(tmp, json);
    }
    await rename(tmp, join(this.dir, name));
    if (event.kind === 'BashOutput') this.orders.set(name, event.order);
  }

  /** The same, synchronously (process exit). */
  saveNow(event: BashEvent): void {
    mkdirSync(this.dir, { recursive: true });
    const tmp = this.tmpName();
    writeFileSync(tmp, JSON.stringify(event, null, 2));
    try {
      renameSync(tmp, join(this.dir, bashEventFileName(event)));
    } catch (err) {
      unlinkSync(tmp);
      throw err;
    }
  }

  /** Event file names, unsorted. */
  private async names(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((name) => FILE_NAME.test(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  private async load(name: string): Promise<BashEvent | null> {
    try {
      const event: unknown = JSON.parse(await readFile(join(this.dir, name), 'utf8'));
      if (!isBashEvent(event)) return null;
      if (event.kind === 'BashOutput') this.orders.set(name, event.order);
      return event;
    } catch {
      // Deleted meanwhile, or not an event: skipped, as OpenHands skips what it cannot load.
      return null;
    }
  }

  /** Whether an event with this file name passes `order__gt` (events without an order do). */
  private async passesOrder(name: string, orderGt: number): Promise<boolean> {
    if (!name.includes('_BashOutput_')) return true;
    let order = this.orders.get(name);
    if (order === undefined) {
      const event = await this.load(name);
      order = event?.kind === 'BashOutput' ? event.order : null;
    }
    return order === null || order > orderGt;
  }

  /**
   * `GET /api/bash/bash_events/search`. As OpenHands: time window, kind and command filters on the
   * file names, sorted by name, paged by file name. `order__gt` is applied before paging (OpenHands
   * applies it to the page, which can hand a poller empty pages forever), and a `page_id` that is
   * no longer there starts the page at the next name rather than from the beginning.
   */
  async search(query: BashEventSearchQuery): Promise<BashEventPage> {
    const gte = query.timestamp__gte !== undefined ? bashFilterPrefix(query.timestamp__gte) : null;
    const lt = query.timestamp__lt !== undefined ? bashFilterPrefix(query.timestamp__lt) : null;
    const matched: string[] = [];
    for (const name of await this.names()) {
      if (gte !== null && name < gte) continue;
      if (lt !== null && name >= lt) continue;
      const parts = name.split('_');
      if (query.kind__eq !== undefined && parts[1] !== query.kind__eq) continue;
      if (query.command_id__eq !== undefined && (parts.length < 4 || parts[2] !== query.command_id__eq)) continue;
      matched.push(name);
    }
    const descending = query.sort_order === 'TIMESTAMP_DESC';
    matched.sort();
    if (descending) matched.reverse();

    let start = 0;
    if (query.page_id) {
      const page = query.page_id;
      start = matched.findIndex((name) => (descending ? name <= page : name >= page));
      if (start < 0) start = matched.length;
    }
    const items: BashEvent[] = [];
    let nextPageId: string | null = null;
    for (let i = start; i < matched.length; i++) {
      const name = matched[i];
      if (query.order__gt !== undefined && !(await this.passesOrder(name, query.order__gt))) continue;
      if (items.length === query.limit) {
        nextPageId = name;
        break;
      }
      const event = await this.load(name);
      if (event) items.push(event);
    }
    return { items, next_page_id: nextPageId };
  }

  /** Every event in file-name (time) order, read one at a time (socket replay). */
  async *all(): AsyncGenerator<BashEvent> {
    const names = (await this.names()).sort();
    for (const name of names) {
      const event = await this.load(name);
      if (event) yield event;
    }
  }

  /** `GET /api/bash/bash_events/{id}`: the event whose file name ends with `_<id>`. */
  async get(idHex: string): Promise<BashEvent | null> {
    const suffix = `_${idHex}`;
    const name = (await this.names()).find((n) => n.endsWith(suffix));
    return name ? this.load(name) : null;
  }

  /** `DELETE /api/bash/bash_events`: removes every event file; how many there were. */
  async clear(): Promise<number> {
    const names = await this.names();
    let count = 0;
    for (const name of names) {
      await unlink(join(this.dir, name)).then(
        () => count++,
        () => undefined,
      );
    }
    this.orders.clear();
    return count;
  }
}
