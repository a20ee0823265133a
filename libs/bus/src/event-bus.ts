import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';

/** One event on its way to subscribers: `seq` is null for events that are never stored. */
export interface BusMessage {
  seq: number | null;
  /** the event's wire JSON, serialized once for every subscriber */
  json: string;
}

export type BusListener = (message: BusMessage) => void;
export type TenantChangeListener = (tenantId: string) => void;

/** Fan-out of live conversation events to every gateway replica's socket subscribers. */
export abstract class EventBus {
  private readonly tenantListeners = new Set<TenantChangeListener>();

  abstract publish(conversationId: string, message: BusMessage): Promise<void>;
  /** Resolves once the subscription is active, so nothing published afterwards is missed. */
  abstract subscribe(conversationId: string, listener: BusListener): Promise<() => void>;
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;

  /** Tells every replica (this one at once) that a tenant's conversations changed: caches drop. */
  async announceTenantChange(tenantId: string): Promise<void> {
    this.dispatchTenantChange(tenantId);
    await this.broadcastTenantChange(tenantId);
  }

  onTenantChange(listener: TenantChangeListener): () => void {
    this.tenantListeners.add(listener);
    this.listenForTenantChanges();
    return () => void this.tenantListeners.delete(listener);
  }

  protected dispatchTenantChange(tenantId: string): void {
    for (const listener of this.tenantListeners) listener(tenantId);
  }

  /** Sends the change to the other replicas (nothing to do in a single process). */
  protected async broadcastTenantChange(_tenantId: string): Promise<void> {}
  protected listenForTenantChanges(): void {}
}

/** Listeners per conversation, shared by both buses. */
class ListenerTable {
  private readonly table = new Map<string, Set<BusListener>>();

  /** Returns true when this is the conversation's first listener. */
  add(conversationId: string, listener: BusListener): boolean {
    let set = this.table.get(conversationId);
    const first = !set;
    if (!set) this.table.set(conversationId, (set = new Set()));
    set.add(listener);
    return first;
  }

  /** Returns true when the conversation has no listener left. */
  remove(conversationId: string, listener: BusListener): boolean {
    const set = this.table.get(conversationId);
    if (!set) return false;
    set.delete(listener);
    if (set.size) return false;
    this.table.delete(conversationId);
    return true;
  }

  dispatch(conversationId: string, message: BusMessage): void {
    for (const listener of this.table.get(conversationId) ?? []) listener(message);
  }
}

export class InProcessEventBus extends EventBus {
  private readonly listeners = new ListenerTable();

  async publish(conversationId: string, message: BusMessage): Promise<void> {
    this.listeners.dispatch(conversationId, message);
  }

  async subscribe(conversationId: string, listener: BusListener): Promise<() => void> {
    this.listeners.add(conversationId, listener);
    return () => void this.listeners.remove(conversationId, listener);
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

const CHANNEL_PREFIX = 'berth:events:';
const TENANT_CHANGES = 'berth:tenant-changes';

/** Redis pub/sub: one publishing and one subscribing connection per process. */
export class RedisEventBus extends EventBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly listeners = new ListenerTable();
  private readonly pending = new Map<string, Promise<unknown>>();
  /** Tags this replica's own tenant-change messages, which it has already applied. */
  private readonly origin = randomUUID();
  private tenantChannel?: Promise<unknown>;
  private readonly logger = new Logger('RedisEventBus');

  constructor(url: string) {
    super();
    this.pub = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: false });
    this.sub = new Redis(url, { maxRetriesPerRequest: null });
    for (const conn of [this.pub, this.sub]) conn.on('error', (err: Error) => this.logger.warn(`redis: ${err.message}`));
    this.sub.on('message', (channel: string, raw: string) => {
      if (channel === TENANT_CHANGES) {
        if (!raw.startsWith(`${this.origin}\n`)) this.dispatchTenantChange(raw.slice(raw.indexOf('\n') + 1));
        return;
      }
      const nl = raw.indexOf('\n');
      const seqText = raw.slice(0, nl);
      this.listeners.dispatch(channel.slice(CHANNEL_PREFIX.length), {
        seq: seqText === '' ? null : Number(seqText),
        json: raw.slice(nl + 1),
      });
    });
  }

  async publish(conversationId: string, message: BusMessage): Promise<void> {
    await this.pub.publish(CHANNEL_PREFIX + conversationId, `${message.seq ?? ''}\n${message.json}`);
  }

  async subscribe(conversationId: string, listener: BusListener): Promise<() => void> {
    const channel = CHANNEL_PREFIX + conversationId;
    if (this.listeners.add(conversationId, listener)) {
      this.pending.set(channel, this.sub.subscribe(channel).finally(() => this.pending.delete(channel)));
    }
    // Later listeners wait for the first one's SUBSCRIBE too: "resolved" means "active".
    await this.pending.get(channel);
    return () => {
      if (this.listeners.remove(conversationId, listener)) {
        this.sub.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  protected override async broadcastTenantChange(tenantId: string): Promise<void> {
    await this.pub.publish(TENANT_CHANGES, `${this.origin}\n${tenantId}`);
  }

  protected override listenForTenantChanges(): void {
    this.tenantChannel ??= this.sub.subscribe(TENANT_CHANGES).catch((err: Error) => {
      this.tenantChannel = undefined;
      this.logger.warn(`could not subscribe to tenant changes: ${err.message}`);
    });
  }

  async ping(): Promise<void> {
    await this.pub.ping();
  }

  async close(): Promise<void> {
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
