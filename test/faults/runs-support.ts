import { Client } from 'pg';
import { LlmStub } from '@berth/testing';
import { BerthProcess, FaultLab } from '../support/faults';
import { api, SocketClient, userMessage } from '../support/server';

/** Shared by the runs-* fault suites: a lab with a gateway, the scripted LLM, and the checks of a fault tester. */

export const KEY = 'runs-fault-key';
export const STALL_MS = 2000;
const TERMINAL = ['finished', 'error', 'stuck'];

export interface RunsLab {
  lab: FaultLab;
  llm: LlmStub;
  gateway: BerthProcess;
  db: Client;
  /** Socket followers started by followAll, stopped by close(). */
  followers: Follower[];
  /** A new connection to the lab's PostgreSQL (after it was stopped and started again). */
  reconnect(): Promise<void>;
  startWorker(): Promise<BerthProcess>;
  close(): Promise<void>;
}

/** A lab with a gateway and `workers` workers started (more with `startWorker`). */
export async function startRunsLab(workers = 0): Promise<RunsLab> {
  const lab = new FaultLab();
  const llm = new LlmStub();
  await llm.start();
  await lab.startRedis();
  await lab.startPostgres();
  const env = { BERTH_RUN_STALL_MS: String(STALL_MS) };
  const gateway = await lab.startGateway({ env: { ...env, OH_SESSION_API_KEYS_0: KEY } });
  const connect = async () => {
    const db = new Client({ connectionString: lab.postgres.url });
    // The lab stops PostgreSQL under it: the error is expected, the test reconnects.
    db.on('error', () => undefined);
    await db.connect();
    return db;
  };
  const r: RunsLab = {
    lab,
    llm,
    gateway,
    db: await connect(),
    followers: [],
    reconnect: async () => {
      await r.db.end().catch(() => undefined);
      r.db = await connect();
    },
    startWorker: () => lab.startWorker({ env }),
    close: async () => {
      for (const f of r.followers) f.stop();
      await r.db.end().catch(() => undefined);
      await lab.close();
      await llm.stop();
    },
  };
  for (let i = 0; i < workers; i++) await r.startWorker();
  return r;
}

/**
 * Conversations whose agent runs `steps` terminal commands of `stepMs` each (the LLM answers after
 * `llmDelayMs`), then finishes. Turns beyond the script finish too: a step cut short is asked again.
 */
export async function createRuns(r: RunsLab, name: string, count: number, steps: number, stepMs: number, llmDelayMs = 300): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const text = `${name} ${i}`;
    r.llm.script(text, (_req, turn) =>
      turn < steps
        ? { delayMs: llmDelayMs, toolCalls: [{ name: 'terminal', arguments: { command: `sleep ${stepMs / 1000}; echo step ${turn}`, timeout: 120 } }] }
        : { delayMs: llmDelayMs, toolCalls: [{ name: 'finish', arguments: { message: `done ${i}` } }] },
    );
    const created = await api(r.gateway, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: r.llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: `/workspace/${name.replace(/\W/g, '-')}-${i}` },
        initial_message: userMessage(text),
      },
    });
    if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
    ids.push(created.body.id.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'));
  }
  return ids;
}

interface StoredEvent {
  seq: number;
  id: string;
  kind: string;
  payload: Record<string, any>;
}

export async function eventsOf(r: RunsLab, id: string): Promise<StoredEvent[]> {
  const { rows } = await r.db.query('SELECT seq, id, kind, payload FROM events WHERE conversation_id = $1 ORDER BY seq', [id]);
  return rows;
}

export async function statusOf(r: RunsLab, id: string): Promise<string> {
  const { rows } = await r.db.query('SELECT execution_status FROM conversations WHERE id = $1', [id]);
  return rows[0]?.execution_status;
}

/** Waits (reading PostgreSQL, the truth) until `done` holds for every conversation. */
export async function waitUntil(what: string, done: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** One query at a time: a pg Client does not run queries side by side. */
async function every(ids: string[], test: (id: string) => Promise<boolean>): Promise<boolean> {
  for (const id of ids) if (!(await test(id))) return false;
  return true;
}

export const allTerminal = (r: RunsLab, ids: string[]) => () => every(ids, async (id) => TERMINAL.includes(await statusOf(r, id)));

export const allActing = (r: RunsLab, ids: string[]) => () => every(ids, async (id) => (await eventsOf(r, id)).some((e) => e.kind === 'ActionEvent'));

/**
 * The fault tester's checks of one run, over its stored log: sequence numbers 1..n with none
 * doubled or missing, event ids unique, one terminal status and nothing stored after it, one
 * `finish` action, each action answered exactly once. Returns the log for further checks.
 */
export async function checkRun(r: RunsLab, id: string): Promise<StoredEvent[]> {
  const events = await eventsOf(r, id);
  expect(events.map((e) => e.seq)).toEqual(events.map((_e, i) => i + 1));
  expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  const statuses = events.filter((e) => e.kind === 'ConversationStateUpdateEvent' && e.payload.key === 'execution_status');
  const terminal = statuses.filter((e) => TERMINAL.includes(e.payload.value));
  expect({ id, terminal: terminal.map((e) => e.payload.value) }).toEqual({ id, terminal: ['finished'] });
  expect(events[events.length - 1].seq).toBe(terminal[0].seq);
  expect(await statusOf(r, id)).toBe('finished');
  const actions = events.filter((e) => e.kind === 'ActionEvent');
  expect(actions.filter((a) => a.payload.tool_name === 'finish')).toHaveLength(1);
  for (const action of actions) {
    const answers = events.filter((e) => e.kind !== 'ActionEvent' && e.payload.tool_call_id === action.payload.tool_call_id);
    expect({ call: action.payload.tool_call_id, answers: answers.length }).toEqual({ call: action.payload.tool_call_id, answers: 1 });
  }
  return events;
}

/** Frames a socket sends that are not stored events: the whole state, streaming deltas. */
const unstored = (frame: any) => (frame.kind === 'ConversationStateUpdateEvent' && frame.key === 'full_state') || frame.kind === 'StreamingDeltaEvent';

const RECONNECT_DELAY_MS = 300;
const MAX_CONNECTIONS = 100;

/**
 * A socket follower of one conversation, as a client would be: whenever its socket closes (by the
 * server — 1011/1013 in an outage — or by `reconnect()`), it opens a new one after a short delay
 * that resumes after the last stored event it received (`after_event_id`). At most MAX_CONNECTIONS.
 */
export class Follower {
  /** Ids of the stored events received, in order of arrival, over every connection. */
  readonly ids: string[] = [];
  /** Close codes of the connections so far. */
  readonly closeCodes: number[] = [];
  connections = 0;
  private socket?: SocketClient;
  private stopped = false;

  constructor(
    private readonly r: RunsLab,
    readonly conversationId: string,
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.stopped || this.connections >= MAX_CONNECTIONS) return;
    this.connections++;
    const last = this.ids[this.ids.length - 1];
    const resume = last ? `after_event_id=${last}` : 'resend_mode=all';
    const socket = new SocketClient(`${this.r.gateway.url.replace('http', 'ws')}/sockets/events/${this.conversationId}?session_api_key=${KEY}&${resume}`);
    this.socket = socket;
    socket.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (!unstored(frame)) this.ids.push(frame.id);
    });
    socket.ws.on('close', (code) => {
      this.closeCodes.push(code);
      if (!this.stopped) setTimeout(() => this.connect(), RECONNECT_DELAY_MS);
    });
  }

  /** Closes the current socket; the follower resumes on a new one. */
  reconnect(): void {
    this.socket?.close();
  }

  stop(): void {
    this.stopped = true;
    this.socket?.close();
  }
}

export function followAll(r: RunsLab, ids: string[]): Follower[] {
  const followers = ids.map((id) => new Follower(r, id));
  r.followers.push(...followers);
  return followers;
}

/**
 * Each follower received every stored event of its conversation exactly once, in order, across
 * its reconnects (waiting a little for the last frames to arrive), and was never refused.
 */
export async function checkFollowers(r: RunsLab, followers: Follower[]): Promise<void> {
  const stored = async (f: Follower) => (await eventsOf(r, f.conversationId)).map((e) => e.id);
  const caughtUp = async () => {
    for (const f of followers) if (f.ids.length < (await stored(f)).length) return false;
    return true;
  };
  // A follower short of events fails the comparison below, which says what is missing.
  await waitUntil('every follower has every stored event', caughtUp, 20_000).catch(() => undefined);
  for (const f of followers) {
    f.stop();
    expect({ id: f.conversationId, ids: f.ids }).toEqual({ id: f.conversationId, ids: await stored(f) });
    expect(f.connections).toBeGreaterThan(1);
    // Closed by the client (1005), by an outage (1011/1013), by the gateway going away (1001); never refused (1008, 4001, 4004).
    expect(f.closeCodes.filter((code) => ![1001, 1005, 1011, 1013].includes(code))).toEqual([]);
  }
}
