import { createServer, Server } from 'node:http';
import { Client } from 'pg';
import { closeServer, listenLocally, LlmStub, readBody } from '@berth/testing';
import { BerthProcess, FaultLab } from '../support/faults';
import { api, startRequest, userMessage } from '../support/server';
import { waitUntil } from './runs-support';

const KEY = 'webhook-outage-key';

interface Post {
  path: string;
  idempotencyKey: string | undefined;
  body: string;
}

/**
 * A webhook receiver that records every POST as it arrives (before answering, after `delayMs`, so a
 * sender killed meanwhile leaves a batch the receiver holds and the sender's cursor does not), and
 * deduplicates event batches by Idempotency-Key as a receiver of Berth is told to.
 */
class CheckingReceiver {
  readonly posts: Post[] = [];
  inFlight = 0;
  /** Answer snapshot POSTs 503 (not recorded: a receiver that failed has not taken them). */
  refuseSnapshots = false;
  refusedSnapshots = 0;
  url = '';
  private server?: Server;

  constructor(private readonly delayMs: number) {}

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      if (this.refuseSnapshots && req.url === '/hooks/conversations') {
        this.refusedSnapshots++;
        await readBody(req);
        return void res.writeHead(503).end('{}');
      }
      this.inFlight++;
      this.posts.push({ path: req.url as string, idempotencyKey: req.headers['idempotency-key'] as string | undefined, body: await readBody(req) });
      await new Promise((r) => setTimeout(r, this.delayMs));
      this.inFlight--;
      res.writeHead(200).end('{}');
    });
    this.url = `http://127.0.0.1:${await listenLocally(this.server)}/hooks`;
  }

  stop(): Promise<void> {
    return closeServer(this.server);
  }

  /** A conversation's event batches: every POST, and the distinct ones (first of each key) in arrival order. */
  batches(conversationId: string): { all: Post[]; distinct: Post[] } {
    const all = this.posts.filter((p) => p.path === `/hooks/events/${conversationId.replace(/-/g, '')}`);
    const byKey = new Map<string, Post>();
    for (const post of all) {
      expect(post.idempotencyKey).toMatch(/^[0-9a-f]{16}-[0-9a-f]{32}-\d+-\d+$/);
      const first = byKey.get(post.idempotencyKey as string);
      // A resend is the same batch, byte for byte: a receiver may drop it by its key alone.
      if (first) expect(post.body).toBe(first.body);
      else byKey.set(post.idempotencyKey as string, post);
    }
    return { all, distinct: [...byKey.values()] };
  }

  /** Event ids a receiver that drops repeated keys has taken, in order. */
  eventIds(conversationId: string): string[] {
    return this.batches(conversationId).distinct.flatMap((p) => JSON.parse(p.body).map((e: { id: string }) => e.id));
  }

  snapshots(conversationId: string): any[] {
    return this.posts.filter((p) => p.path === '/hooks/conversations').map((p) => JSON.parse(p.body)).filter((info) => info.id === conversationId);
  }
}

function webhookEnv(receivers: CheckingReceiver[]): Record<string, string> {
  const env: Record<string, string> = { OH_SESSION_API_KEYS_0: KEY, BERTH_REAPER_INTERVAL_MS: '200' };
  receivers.forEach((receiver, n) => {
    Object.assign(env, {
      [`OH_WEBHOOKS_${n}_BASE_URL`]: receiver.url,
      [`OH_WEBHOOKS_${n}_EVENT_BUFFER_SIZE`]: String(2 + 3 * n),
      [`OH_WEBHOOKS_${n}_FLUSH_DELAY`]: '0.3',
      [`OH_WEBHOOKS_${n}_NUM_RETRIES`]: '2',
      [`OH_WEBHOOKS_${n}_RETRY_DELAY`]: '0.2',
    });
  });
  return env;
}

describe('webhooks through Redis and PostgreSQL outages and kill -9 (gateway and worker as children)', () => {
  const lab = new FaultLab();
  const llm = new LlmStub();
  // Two receivers with different batch sizes, each answering slowly enough to be caught mid-POST.
  const receivers = [new CheckingReceiver(250), new CheckingReceiver(100)];
  let env: Record<string, string>;
  let gateway: BerthProcess;
  let worker: BerthProcess;
  let db: Client;

  const connect = async () => {
    await db?.end().catch(() => undefined);
    db = new Client({ connectionString: lab.postgres.url });
    db.on('error', () => undefined); // the lab stops PostgreSQL under it; the test reconnects
    await db.connect();
  };
  const storedIds = async (id: string): Promise<string[]> => (await db.query(`SELECT id FROM events WHERE conversation_id = $1 ORDER BY seq`, [id])).rows.map((r) => r.id);
  const post = async (id: string, text: string) => expect((await api(gateway, 'POST', `/api/conversations/${id}/events`, { key: KEY, body: userMessage(text) })).status).toBe(200);

  beforeAll(async () => {
    await llm.start();
    for (const receiver of receivers) await receiver.start();
    await lab.startPostgres();
    await lab.startRedis(); // not persistent: a restart comes back empty, every queued job gone
    env = webhookEnv(receivers);
    gateway = await lab.startGateway({ env });
    worker = await lab.startWorker({ env });
    await connect();
  });
  afterAll(async () => {
    await db?.end().catch(() => undefined);
    await lab.close();
    await llm.stop();
    for (const receiver of receivers) await receiver.stop();
  });

  it('every receiver gets every stored event once, in order, under stable batch keys; snapshots follow the conversation', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await api(gateway, 'POST', '/api/conversations', { key: KEY, body: startRequest({ initial_message: userMessage(`start ${i}`) }) });
      expect(created.status).toBe(201);
      ids.push(created.body.id);
    }
    for (const id of ids) for (let n = 0; n < 3; n++) await post(id, `before ${n}`);

    // (a) Redis away while a run stores events (its terminal command ends during the outage).
    const text = 'a run across a redis outage';
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'sleep 2 && echo slept', timeout: 60 } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
    ]);
    const run = await api(gateway, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: '/workspace/webhooks' },
        initial_message: userMessage(text, true),
      },
    });
    expect(run.status).toBe(201);
    ids.push(run.body.id);
    const kinds = async (id: string) => (await db.query(`SELECT kind FROM events WHERE conversation_id = $1`, [id])).rows.map((r) => r.kind);
    await waitUntil('the terminal action is stored', async () => (await kinds(run.body.id)).includes('ActionEvent'), 20_000);
    // A change whose snapshot every receiver refuses until its queue is gone with Redis: it stays owed
    // in PostgreSQL and is sent once a receiver takes snapshots again.
    const renamed = 'renamed before redis goes';
    for (const receiver of receivers) receiver.refuseSnapshots = true;
    expect((await api(gateway, 'PATCH', `/api/conversations/${ids[0]}`, { key: KEY, body: { title: renamed } })).status).toBe(200);
    await waitUntil('both receivers refused the snapshot', async () => receivers.every((receiver) => receiver.refusedSnapshots > 0), 20_000);
    await lab.redis.stop();
    await waitUntil('the observation is stored while Redis is down', async () => (await kinds(run.body.id)).includes('ObservationEvent'), 20_000);
    await new Promise((r) => setTimeout(r, 2000));
    await lab.redis.start();
    for (const receiver of receivers) receiver.refuseSnapshots = false;
    await waitUntil('the run finishes', async () => (await db.query(`SELECT execution_status FROM conversations WHERE id = $1`, [run.body.id])).rows[0].execution_status === 'finished', 60_000);

    // (b) PostgreSQL stopped with events stored and not yet sent (they wait for flush_delay).
    await waitUntil('the gateway takes requests again', async () => (await api(gateway, 'GET', `/api/conversations/${ids[0]}`, { key: KEY })).status === 200, 30_000);
    for (const id of ids.slice(0, 3)) for (let n = 0; n < 2; n++) await post(id, `before postgres stops ${n}`);
    await lab.postgres.stop();
    await new Promise((r) => setTimeout(r, 3000));
    await lab.postgres.start();
    await connect();
    await waitUntil('the gateway reads PostgreSQL again', async () => (await api(gateway, 'GET', `/api/conversations/${ids[0]}`, { key: KEY })).status === 200, 30_000);

    // (c) kill -9 of both processes while a receiver holds a POST it has not answered.
    for (const id of ids.slice(0, 3)) for (let n = 0; n < 4; n++) await post(id, `before the kill ${n}`);
    await waitUntil('a POST is in flight', async () => receivers[0].inFlight > 0, 20_000);
    await Promise.all([gateway.kill(), worker.kill()]);
    gateway = await lab.startGateway({ env });
    worker = await lab.startWorker({ env });
    const restarted = Date.now();
    for (const id of ids.slice(0, 3)) {
      await post(id, 'after the restart');
      expect((await api(gateway, 'PATCH', `/api/conversations/${id}`, { key: KEY, body: { title: `final ${id}` } })).status).toBe(200);
    }

    for (const [n, receiver] of receivers.entries()) {
      // Stored ids are read again at every look: a run or a PATCH may still be appending events.
      for (const id of ids) {
        await waitUntil(`receiver ${n} has every stored event of ${id}`, async () => JSON.stringify(receiver.eventIds(id)) === JSON.stringify(await storedIds(id)), 120_000);
      }
    }
    console.log(`every event delivered ${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart`);
    await new Promise((r) => setTimeout(r, 1500)); // a late duplicate would arrive by now
    const repeats: number[] = [];
    for (const receiver of receivers) {
      for (const id of ids) expect(receiver.eventIds(id)).toEqual(await storedIds(id));
      repeats.push(ids.reduce((sum, id) => sum + receiver.batches(id).all.length - receiver.batches(id).distinct.length, 0));
    }
    // The POST the kill cut short was sent again, under its key, with the same events.
    expect(repeats[0]).toBeGreaterThanOrEqual(1);
    console.log(`batches resent under the same Idempotency-Key: ${repeats.join(', ')} (receivers 0, 1)`);

    for (const receiver of receivers) {
      for (const id of ids.slice(0, 3)) {
        await waitUntil(`the final snapshot of ${id}`, async () => receiver.snapshots(id).at(-1)?.title === `final ${id}`, 30_000);
        if (id === ids[0]) expect(receiver.snapshots(id).map((info) => info.title)).toContain(renamed);
        expect(JSON.stringify(receiver.snapshots(id))).not.toContain('sk-test-should-never-leak');
      }
      expect(receiver.snapshots(run.body.id).length).toBeGreaterThanOrEqual(1);
    }
    expect(gateway.output() + worker.output()).not.toMatch(/unhandled|UnhandledPromiseRejection/i);
  }, 300_000);
});
