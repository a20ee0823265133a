import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { parseRunSignal, RunSignal } from '@berth/contracts';
import { REQUEST_PATH_REDIS } from './redis-options';

/** One event on its way to subscribers: `seq` is null for events that are never stored. */
export interface BusMessage {
  seq: number | null;
  /** the event's wire JSON, serialized once for every subscriber */
  json: string;
}

/** The bus (Redis) cannot serve a subscription now: the caller should tell its client to retry. */
export class BusUnavailableError extends Error {
  override readonly name = 'BusUnavailableError';
}

export type BusListener = (message: BusMessage) => void;
export type TenantChangeListener = (tenantId: string) => void;
export type ResumeListener = () => void;

/** How long a subscription may wait for the bus before the caller is told it is unavailable. */
const SUBSCRIBE_TIMEOUT_MS = 5000;

/** Fan-out of live conversation events to every gateway replica's socket subscribers. */
export abstract class EventBus {
  private readonly tenantListeners = new Set<TenantChangeListener>();
  private readonly resumeListeners = new Set<ResumeListener>();
  private readonly busLogger = new Logger('EventBus');

  abstract publish(conversationId: string, message: BusMessage): Promise<void>;
  /** Resolves once the subscription is active, so nothing published afterwards is missed. */
  abstract subscribe(conversationId: string, listener: BusListener): Promise<() => void>;
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;

  /** Signals the worker running the conversation, if any (on a channel of its own, which sockets do not see). */
  async signalRun(conversationId: string, signal: RunSignal): Promise<void> {
    try {
      await this.publish(runChannel(conversationId), { seq: null, json: JSON.stringify(signal) });
    } catch (err) {
      // The loop reads the row at every step: a lost message is read by its id, a lost interrupt acts as the pause it also is.
      this.busLogger.warn(`run signal for ${conversationId} not sent: ${(err as Error).message}`);
    }
  }

  /** The run's signals, parsed; anything else on the channel is ignored. */
  onRunSignal(conversationId: string, listener: (signal: RunSignal) => void): Promise<() => void> {
    return this.subscribe(runChannel(conversationId), (m) => {
      const signal = parseRunSignal(m.json);
      if (signal) listener(signal);
    });
  }

  /** Tells every replica (this one at once) that a tenant's conversations changed: caches drop. */
  async announceTenantChange(tenantId: string): Promise<void> {
    this.dispatchTenantChange(tenantId);
    try {
      await this.broadcastTenantChange(tenantId);
    } catch (err) {
      // Only caches listen, and they expire on their own: a bus outage must not fail the write announced.
      this.busLogger.warn(`tenant change of ${tenantId} not broadcast: ${(err as Error).message}`);
    }
  }

  onTenantChange(listener: TenantChangeListener): () => void {
    this.tenantListeners.add(listener);
    this.listenForTenantChanges();
    return () => void this.tenantListeners.delete(listener);
  }

  /**
   * Called when the bus is back after an outage: messages published meanwhile were lost, so a
   * subscriber reads what it missed from the event log.
   */
  onResume(listener: ResumeListener): () => void {
    this.resumeListeners.add(listener);
    return () => void this.resumeListeners.delete(listener);
  }

  protected dispatchResume(): void {
    for (const listener of this.resumeListeners) listener();
  }

  protected dispatchTenantChange(tenantId: string): void {
    for (const listener of this.tenantListeners) listener(tenantId);
  }

  /** Sends the change to the other replicas (nothing to do in a single process). */
  protected async broadcastTenantChange(_tenantId: string): Promise<void> {}
  protected listenForTenantChanges(): void {}
}

/** Run signals travel beside a conversation's events, under a key no conversation id takes. */
const runChannel = (conversationId: string) => `run:${conversationId}`;

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

  conversations(): string[] {
    return [...this.table.keys()];
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
    this.pub = new Redis(url, REQUEST_PATH_REDIS);
    this.sub = new Redis(url, { ...REQUEST_PATH_REDIS, maxRetriesPerRequest: null });
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
    // ioredis re-subscribes on reconnect; once that took (SUBSCRIBE again is a no-op, answered in
    // order), subscribers catch up on what was published while the connection was down.
    let connectedBefore = false;
    this.sub.on('ready', () => {
      if (!connectedBefore) {
        connectedBefore = true;
        return;
      }
      const channels = this.listeners.conversations().map((id) => CHANNEL_PREFIX + id);
      const resubscribed = channels.length ? this.sub.subscribe(...channels) : Promise.resolve();
      resubscribed.then(
        () => {
          this.logger.log('event bus reconnected: subscribers catch up from the event log');
          this.dispatchResume();
        },
        (err: Error) => this.logger.warn(`could not re-subscribe after a reconnect: ${err.message}`),
      );
    });
  }

  async publish(conversationId: string, message: BusMessage): Promise<void> {
    await this.pub.publish(CHANNEL_PREFIX + conversationId, `${message.seq ?? ''}\n${message.json}`);
  }

  async subscribe(conversationId: string, listener: BusListener): Promise<() => void> {
    const channel = CHANNEL_PREFIX + conversationId;
    const unsubscribe = () => {
      if (this.listeners.remove(conversationId, listener)) {
        this.sub.unsubscribe(channel).catch(() => undefined);
      }
    };
    if (this.listeners.add(conversationId, listener)) {
      this.pending.set(channel, this.sub.subscribe(channel).finally(() => this.pending.delete(channel)));
    }
    // Later listeners wait for the first one's SUBSCRIBE too: "resolved" means "active". The
    // subscribing connection queues commands while Redis is away: bounded, so a caller can refuse.
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pending.get(channel),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new BusUnavailableError('the event bus did not confirm the subscription in time')), SUBSCRIBE_TIMEOUT_MS))),
      ]);
    } catch (err) {
      unsubscribe();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return unsubscribe;
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
