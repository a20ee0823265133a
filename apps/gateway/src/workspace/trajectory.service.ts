import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { uuidHex } from '@berth/contracts';
import { ConversationRepository, EventLog, toFullState } from '@berth/persistence';
import type { FastifyReply } from 'fastify';
import { PassThrough } from 'node:stream';
import { crc32, deflateRawSync } from 'node:zlib';
import type { Principal } from '../common/tenant.decorator';

const EVENT_BATCH = 500;
const ZIP_UTF8_FLAG = 0x0800;

/** MS-DOS date and time of a zip entry. */
function dosDateTime(at: Date): { date: number; time: number } {
  return {
    date: ((Math.max(at.getFullYear(), 1980) - 1980) << 9) | ((at.getMonth() + 1) << 5) | at.getDate(),
    time: (at.getHours() << 11) | (at.getMinutes() << 5) | Math.floor(at.getSeconds() / 2),
  };
}

/**
 * A zip archive written as a stream, entry by entry (each one deflated in memory, so its sizes and
 * CRC go in its local header), with zip64 end records when it holds more than 65,535 entries.
 */
class ZipWriter {
  private offset = 0;
  private readonly central: Buffer[] = [];
  private count = 0;
  private readonly stamp = dosDateTime(new Date());

  constructor(private readonly out: PassThrough) {}

  private async write(chunk: Buffer): Promise<void> {
    this.offset += chunk.length;
    if (!this.out.write(chunk)) await new Promise<void>((resolve) => this.out.once('drain', resolve));
  }

  async entry(name: string, data: Buffer | null): Promise<void> {
    const isDir = data === null;
    const nameBytes = Buffer.from(name, 'utf8');
    const body = isDir ? Buffer.alloc(0) : deflateRawSync(data);
    const crc = isDir ? 0 : crc32(data);
    const size = isDir ? 0 : data.length;
    const method = isDir ? 0 : 8;
    if (this.offset > 0xfffffffe || size > 0xfffffffe) throw new Error('The trajectory is too large for a zip archive');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(ZIP_UTF8_FLAG, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(this.stamp.time, 10);
    local.writeUInt16LE(this.stamp.date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const at = this.offset;
    const head = Buffer.alloc(46);
    head.writeUInt32LE(0x02014b50, 0);
    head.writeUInt16LE((3 << 8) | 20, 4);
    head.writeUInt16LE(20, 6);
    head.writeUInt16LE(ZIP_UTF8_FLAG, 8);
    head.writeUInt16LE(method, 10);
    head.writeUInt16LE(this.stamp.time, 12);
    head.writeUInt16LE(this.stamp.date, 14);
    head.writeUInt32LE(crc, 16);
    head.writeUInt32LE(body.length, 20);
    head.writeUInt32LE(size, 24);
    head.writeUInt16LE(nameBytes.length, 28);
    // Unix mode in the high half of the external attributes (and MS-DOS's directory bit).
    head.writeUInt32LE((((isDir ? 0o40755 : 0o100644) << 16) | (isDir ? 0x10 : 0)) >>> 0, 38);
    head.writeUInt32LE(at, 42);
    this.central.push(head, nameBytes);
    this.count++;
    await this.write(local);
    await this.write(nameBytes);
    if (body.length) await this.write(body);
  }

  async end(): Promise<void> {
    const start = this.offset;
    for (const part of this.central) await this.write(part);
    const size = this.offset - start;
    const zip64 = this.count > 0xffff;
    if (zip64) {
      const record = Buffer.alloc(56);
      record.writeUInt32LE(0x06064b50, 0);
      record.writeBigUInt64LE(44n, 4);
      record.writeUInt16LE(45, 12);
      record.writeUInt16LE(45, 14);
      record.writeBigUInt64LE(BigInt(this.count), 24);
      record.writeBigUInt64LE(BigInt(this.count), 32);
      record.writeBigUInt64LE(BigInt(size), 40);
      record.writeBigUInt64LE(BigInt(start), 48);
      const recordAt = this.offset;
      await this.write(record);
      const locator = Buffer.alloc(20);
      locator.writeUInt32LE(0x07064b50, 0);
      locator.writeBigUInt64LE(BigInt(recordAt), 8);
      locator.writeUInt32LE(1, 16);
      await this.write(locator);
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(zip64 ? 0xffff : this.count, 8);
    eocd.writeUInt16LE(zip64 ? 0xffff : this.count, 10);
    eocd.writeUInt32LE(size, 12);
    eocd.writeUInt32LE(start, 16);
    await this.write(eocd);
    this.out.end();
  }
}

/**
 * `GET /api/file/download-trajectory/{conversation_id}`: the conversation as OpenHands persists it,
 * zipped — `<id hex>/base_state.json` (its ConversationState, secrets masked) and
 * `<id hex>/events/event-<index>-<event id>.json` for every event, oldest first. The events live
 * in Berth's database, so the gateway serves this (not the sandbox); streamed, a batch of events at
 * a time.
 */
@Injectable()
export class TrajectoryService {
  constructor(
    private readonly conversations: ConversationRepository,
    private readonly events: EventLog,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  async download(p: Principal, id: string, reply: FastifyReply): Promise<void> {
    const row = await this.conversations.find(p, id);
    if (!row) throw new NotFoundException({ detail: 'Conversation not found' });
    const top = uuidHex(row.id);
    const out = new PassThrough();
    const zip = new ZipWriter(out);
    const upto = await this.events.lastSeq(row.id);
    void (async () => {
      await zip.entry(`${top}/`, null);
      await zip.entry(`${top}/base_state.json`, Buffer.from(JSON.stringify(toFullState(row, this.config.conversationsPath)), 'utf8'));
      await zip.entry(`${top}/events/`, null);
      let index = 0;
      for (let after = 0; after < upto; ) {
        const batch = await this.events.range(row.id, after, upto, EVENT_BATCH);
        if (batch.length === 0) break;
        for (const { seq, event } of batch) {
          const eventId = String((event as { id?: unknown }).id ?? seq);
          await zip.entry(`${top}/events/event-${String(index++).padStart(5, '0')}-${eventId}.json`, Buffer.from(JSON.stringify(event), 'utf8'));
          after = seq;
        }
      }
      await zip.end();
    })().catch((err: unknown) => out.destroy(err as Error));
    reply.status(200).header('content-type', 'application/octet-stream').header('content-disposition', `attachment; filename="${top}.zip"`);
    await reply.send(out);
  }
}
