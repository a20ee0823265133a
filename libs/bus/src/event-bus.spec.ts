import { randomUUID } from 'node:crypto';
import { BusMessage, EventBus, InProcessEventBus, RedisEventBus } from './event-bus';

const REDIS_URL = process.env.BERTH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Collects what a listener receives; `next(n)` resolves once n messages have arrived (the Jest timeout bounds it). */
class Inbox {
  readonly messages: BusMessage[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];

  readonly listener = (message: BusMessage): void => {
    this.messages.push(message);
    this.waiters = this.waiters.filter((w) => (this.messages.length >= w.count ? (w.resolve(), false) : true));
  };

  until(count: number): Promise<BusMessage[]> {
    if (this.messages.length >= count) return Promise.resolve(this.messages.slice(0, count));
    return new Promise((resolve) => this.waiters.push({ count, resolve: () => resolve(this.messages.slice(0, count)) }));
  }
}

interface BusPair {
  /** the bus under test */
  bus: EventBus;
  /** where other replicas publish: the same bus in process, a second connection set with Redis */
  peer: EventBus;
  close(): Promise<void>;
}

const IMPLEMENTATIONS: [string, () => BusPair][] = [
  [
    'InProcessEventBus',
    () => {
      const bus = new InProcessEventBus();
      return { bus, peer: bus, close: () => bus.close() };
    },
  ],
  [
    'RedisEventBus',
    () => {
      const bus = new RedisEventBus(REDIS_URL);
      const peer = new RedisEventBus(REDIS_URL);
      return { bus, peer, close: async () => void (await Promise.all([bus.close(), peer.close()])) };
    },
  ],
];

const msg = (seq: number | null, body: unknown): BusMessage => ({ seq, json: JSON.stringify(body) });

describe.each(IMPLEMENTATIONS)('%s', (_name, make) => {
  let pair: BusPair;
  let bus: EventBus;

  beforeAll(async () => {
    pair = make();
    bus = pair.bus;
    await bus.ping();
    await pair.peer.ping();
  });
  afterAll(async () => {
    await pair.close();
  });

  /**
   * Delivery is ordered per bus, so once a marker published after `action` has arrived, anything
   * `action` would have delivered has arrived too: lets "nothing was delivered" be asserted without waiting.
   */
  async function settle(publisher: EventBus = bus): Promise<void> {
    const barrier = `barrier-${randomUUID()}`;
    const inbox = new Inbox();
    const unsubscribe = await bus.subscribe(barrier, inbox.listener);
    await publisher.publish(barrier, msg(0, { kind: 'Barrier' }));
    await inbox.until(1);
    unsubscribe();
  }

  it('delivers a message published after subscribe resolved, as {seq, json}', async () => {
    const conv = randomUUID();
    const inbox = new Inbox();
    const unsubscribe = await bus.subscribe(conv, inbox.listener);
    const event = { id: 'e1', kind: 'MessageEvent', text: 'héllo\nworld 🔑' };
    await bus.publish(conv, msg(7, event));
    const [received] = await inbox.until(1);
    expect(received).toEqual({ seq: 7, json: JSON.stringify(event) });
    expect(JSON.parse(received.json)).toEqual(event);
    unsubscribe();
  });

  it('delivers to every listener of that conversation, in publish order', async () => {
    const conv = randomUUID();
    const a = new Inbox();
    const b = new Inbox();
    const offA = await bus.subscribe(conv, a.listener);
    const offB = await bus.subscribe(conv, b.listener);
    for (let seq = 1; seq <= 5; seq++) await bus.publish(conv, msg(seq, { seq }));
    const expected = [1, 2, 3, 4, 5].map((seq) => msg(seq, { seq }));
    expect(await a.until(5)).toEqual(expected);
    expect(await b.until(5)).toEqual(expected);
    offA();
    offB();
  });

  it('does not deliver to listeners of other conversations', async () => {
    const mine = randomUUID();
    const other = randomUUID();
    const inbox = new Inbox();
    const otherInbox = new Inbox();
    const off = await bus.subscribe(mine, inbox.listener);
    const offOther = await bus.subscribe(other, otherInbox.listener);
    await bus.publish(other, msg(1, { for: 'other' }));
    await bus.publish(randomUUID(), msg(1, { for: 'nobody' }));
    await bus.publish(mine, msg(2, { for: 'mine' }));
    expect(await inbox.until(1)).toEqual([msg(2, { for: 'mine' })]);
    expect(await otherInbox.until(1)).toEqual([msg(1, { for: 'other' })]);
    await settle();
    expect(inbox.messages).toHaveLength(1);
    expect(otherInbox.messages).toHaveLength(1);
    off();
    offOther();
  });

  it('round-trips seq null (events that are never stored) and seq 0', async () => {
    const conv = randomUUID();
    const inbox = new Inbox();
    const off = await bus.subscribe(conv, inbox.listener);
    await bus.publish(conv, msg(null, { kind: 'StreamingDeltaEvent' }));
    await bus.publish(conv, msg(0, { kind: 'First' }));
    await bus.publish(conv, { seq: 123456789, json: '' });
    const received = await inbox.until(3);
    expect(received[0]).toEqual({ seq: null, json: JSON.stringify({ kind: 'StreamingDeltaEvent' }) });
    expect(received[1]).toEqual({ seq: 0, json: JSON.stringify({ kind: 'First' }) });
    expect(received[2]).toEqual({ seq: 123456789, json: '' });
    off();
  });

  it('unsubscribe stops delivery to that listener only', async () => {
    const conv = randomUUID();
    const leaving = new Inbox();
    const staying = new Inbox();
    const offLeaving = await bus.subscribe(conv, leaving.listener);
    const offStaying = await bus.subscribe(conv, staying.listener);
    await bus.publish(conv, msg(1, { n: 1 }));
    await leaving.until(1);
    await staying.until(1);

    offLeaving();
    await bus.publish(conv, msg(2, { n: 2 }));
    expect(await staying.until(2)).toEqual([msg(1, { n: 1 }), msg(2, { n: 2 })]);
    expect(leaving.messages).toEqual([msg(1, { n: 1 })]);

    offStaying();
    await bus.publish(conv, msg(3, { n: 3 }));
    await settle();
    expect(staying.messages).toHaveLength(2);
    expect(leaving.messages).toHaveLength(1);
  });

  it('a conversation can be subscribed again after its last listener left', async () => {
    const conv = randomUUID();
    const first = new Inbox();
    (await bus.subscribe(conv, first.listener))();
    const second = new Inbox();
    const off = await bus.subscribe(conv, second.listener);
    await bus.publish(conv, msg(9, { again: true }));
    expect(await second.until(1)).toEqual([msg(9, { again: true })]);
    expect(first.messages).toEqual([]);
    off();
  });

  it('the same listener on two conversations gets both, and unsubscribing one keeps the other', async () => {
    const c1 = randomUUID();
    const c2 = randomUUID();
    const inbox = new Inbox();
    const off1 = await bus.subscribe(c1, inbox.listener);
    const off2 = await bus.subscribe(c2, inbox.listener);
    await bus.publish(c1, msg(1, { c: 1 }));
    await bus.publish(c2, msg(1, { c: 2 }));
    expect(await inbox.until(2)).toEqual([msg(1, { c: 1 }), msg(1, { c: 2 })]);
    off1();
    await bus.publish(c1, msg(2, { c: 1 }));
    await bus.publish(c2, msg(2, { c: 2 }));
    expect(await inbox.until(3)).toEqual([msg(1, { c: 1 }), msg(1, { c: 2 }), msg(2, { c: 2 })]);
    await settle();
    expect(inbox.messages).toHaveLength(3);
    off2();
  });

  it('events published by another replica reach this one (and only the right conversation)', async () => {
    const conv = randomUUID();
    const inbox = new Inbox();
    const off = await bus.subscribe(conv, inbox.listener);
    await pair.peer.publish(randomUUID(), msg(1, { elsewhere: true }));
    await pair.peer.publish(conv, msg(4, { from: 'peer' }));
    expect(await inbox.until(1)).toEqual([msg(4, { from: 'peer' })]);
    await settle(pair.peer);
    expect(inbox.messages).toHaveLength(1);
    off();
  });

  it('each replica sees the other one’s events', async () => {
    const conv = randomUUID();
    const here = new Inbox();
    const there = new Inbox();
    const offHere = await bus.subscribe(conv, here.listener);
    const offThere = await pair.peer.subscribe(conv, there.listener);
    await bus.publish(conv, msg(1, { by: 'bus' }));
    await pair.peer.publish(conv, msg(2, { by: 'peer' }));
    expect(await here.until(2)).toEqual([msg(1, { by: 'bus' }), msg(2, { by: 'peer' })]);
    expect(await there.until(2)).toEqual([msg(1, { by: 'bus' }), msg(2, { by: 'peer' })]);
    offHere();
    offThere();
  });
});
