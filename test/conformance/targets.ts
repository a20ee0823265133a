import { mkdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { LlmStub } from '@berth/testing';
import type { StubRequest, StubTurn } from '@berth/testing';
import { WebSocket } from 'ws';
import { privateDatabase, startServer, TestServer } from '../support/server';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startReferenceServer } = require('../../scripts/reference-server.js') as {
  startReferenceServer(options: { apiKey?: string | null; env?: Record<string, string> }): Promise<{ url: string; workspacePath: string; log(): string; stop(): Promise<void> }>;
};

/**
 * The reference derives its secrets cipher from its first session key (sha256, standard base64); the
 * venv's cryptography 51 refuses a derived key whose base64 holds `+` or `/` (`conformance-key`'s
 * does: every create answered 500). This one's holds neither.
 */
export const KEY = 'conformance-key-2';
export type TargetName = 'reference' | 'berth';

/** One server under comparison, as a client sees it. */
export interface Target {
  name: TargetName;
  url: string;
  wsUrl: string;
  key: string;
  /** the scripted LLM's base_url */
  llmUrl: string;
  /** an absolute folder where this server's workspace routes may read and write */
  root: string;
  /** a conversation's `workspace.working_dir` on this server */
  workingDir(name: string): string;
  berth?: TestServer;
  log(): string;
}

export interface Targets {
  reference: Target;
  berth: Target;
  llm: LlmStub;
  stop(): Promise<void>;
}

/** The text of a request's last message. */
function lastText(request: StubRequest): string {
  const last = request.body.messages.at(-1);
  if (!last) return '';
  if (typeof last.content === 'string') return last.content;
  return ((last.content ?? []) as { type: string; text?: string }[]).filter((c) => c.type === 'text').map((c) => c.text).join('');
}

/**
 * The scripted LLM of every scenario, the same for both servers: it answers from the request alone
 * (not a turn counter), since the reference also calls its LLM for titles (a request with no tools).
 * A user message starting "run:" gets a terminal call of the rest, its result a `finish`; any other
 * user message a plain answer. `slow:` delays the answer (a run that stays running).
 */
export function conformanceScript(request: StubRequest): StubTurn {
  if (!request.body.tools?.length) return { text: 'Conformance title' };
  const last = request.body.messages.at(-1);
  if (last?.role === 'tool') return { toolCalls: [{ name: 'finish', arguments: { message: 'The command ran.' } }] };
  const text = lastText(request);
  const delayMs = text.startsWith('slow:') ? 60_000 : undefined;
  const command = /run: (.*)$/s.exec(text)?.[1];
  if (command) return { text: 'Running it.', toolCalls: [{ name: 'terminal', arguments: { command, summary: 'run the command' } }], delayMs };
  return { text: `You said: ${text}`, delayMs };
}

/**
 * The reference agent server and Berth (PostgreSQL + Redis, workers in-process; a database of its
 * own), each with the same key and the same scripted LLM, started side by side.
 */
export async function startTargets(options: { referenceEnv?: Record<string, string>; berthEnv?: Record<string, string> } = {}): Promise<Targets> {
  const llm = new LlmStub();
  await llm.start();
  llm.fallbackScript((request) => conformanceScript(request));
  const database = await privateDatabase('conformance');
  const [ref, berth] = await Promise.all([
    // A secret key of its own: without one the reference derives its Fernet key from the session key as
    // standard (not url-safe) base64 of its SHA-256, which cryptography 51 refuses when it holds '+' or '/'
    // (every create is then a 500) — as it does for KEY. This one's has neither.
    startReferenceServer({ apiKey: KEY, env: { OH_SECRET_KEY: 'conformance-secret-2', ...(options.referenceEnv ?? {}) } }),
    startServer('postgres', { DATABASE_URL: database.url, OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', BERTH_RUN_STALL_MS: '5000', ...(options.berthEnv ?? {}) }),
  ]);
  mkdirSync(ref.workspacePath, { recursive: true });
  const home = await fetch(`${berth.url}/api/file/home`, { headers: { 'X-Session-API-Key': KEY } }).then((r) => r.json() as Promise<{ home: string }>);
  const reference: Target = {
    name: 'reference',
    url: ref.url,
    wsUrl: ref.url.replace('http', 'ws'),
    key: KEY,
    llmUrl: llm.url,
    root: ref.workspacePath,
    workingDir: (name) => join(ref.workspacePath, name),
    log: ref.log,
  };
  const berthTarget: Target = {
    name: 'berth',
    url: berth.url,
    wsUrl: berth.wsUrl,
    key: KEY,
    llmUrl: llm.url,
    root: home.home,
    workingDir: (name) => join(home.home, name),
    berth,
    log: () => '',
  };
  return {
    reference,
    berth: berthTarget,
    llm,
    async stop() {
      await Promise.allSettled([ref.stop(), berth.close()]);
      await Promise.allSettled([llm.stop(), database.drop()]);
    },
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  /** parsed JSON, or undefined when the body is not JSON */
  json?: unknown;
  text: string;
}

export interface Call {
  method: string;
  path: string;
  body?: unknown;
  /** a multipart upload: field `file` with this content */
  file?: { name: string; content: string };
  headers?: Record<string, string>;
  /** false: no X-Session-API-Key */
  auth?: boolean;
}

/** One HTTP call as a client makes it (a GET may carry a JSON body, as OpenHands' batch reads do). */
export function send(target: Target, call: Call): Promise<Answer> {
  const headers: Record<string, string> = { ...(call.auth === false ? {} : { 'X-Session-API-Key': target.key }), ...(call.headers ?? {}) };
  let body: Buffer | undefined;
  if (call.file) {
    const boundary = `----conformance${Date.now()}`;
    headers['content-type'] = `multipart/form-data; boundary=${boundary}`;
    body = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${call.file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n${call.file.content}\r\n--${boundary}--\r\n`,
    );
  } else if (call.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = Buffer.from(typeof call.body === 'string' ? call.body : JSON.stringify(call.body));
  }
  if (body) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = httpRequest(target.url + call.path, { method: call.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        if (/json/.test(String(res.headers['content-type'] ?? ''))) {
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
        }
        const flat: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ status: res.statusCode as number, headers: flat, json, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls a conversation until its status is one of `statuses`. */
export async function waitStatus(target: Target, id: string, statuses: string[], timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await send(target, { method: 'GET', path: `/api/conversations/${id}` })).json as Record<string, unknown>;
    if (statuses.includes(info?.execution_status as string)) return info;
    if (Date.now() > deadline) throw new Error(`${target.name}: conversation ${id} stayed ${info?.execution_status}, wanted ${statuses.join('|')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every stored event of a conversation, through events/search. */
export async function allEvents(target: Target, id: string): Promise<Record<string, any>[]> {
  const out: Record<string, any>[] = [];
  let page: string | null = null;
  do {
    const res = await send(target, { method: 'GET', path: `/api/conversations/${id}/events/search?limit=100${page ? `&page_id=${page}` : ''}` });
    const body = res.json as { items: Record<string, any>[]; next_page_id: string | null };
    out.push(...body.items);
    page = body.next_page_id;
  } while (page);
  return out;
}

/** What a client sees of one socket: the handshake, the frames, the close. */
export interface SocketTranscript {
  /** the HTTP status of a refused handshake, 101 when it opened */
  handshake: number;
  frames: Record<string, any>[];
  closeCode: number | null;
  closeReason: string;
}

/**
 * A socket that records its transcript. `until` ends the wait early (frames so far); the socket
 * is closed by the client after `settleMs` of quiet or when the server closes it.
 */
export class RecordingSocket {
  readonly transcript: SocketTranscript = { handshake: 0, frames: [], closeCode: null, closeReason: '' };
  readonly ws: WebSocket;
  private readonly done: Promise<void>;
  private readonly opened: Promise<void>;
  private lastActivity = Date.now();

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    this.opened = new Promise((resolve) => {
      this.ws.once('open', () => {
        this.transcript.handshake = 101;
        resolve();
      });
      this.ws.once('unexpected-response', (_req, res) => {
        this.transcript.handshake = res.statusCode ?? 0;
        res.resume();
        resolve();
      });
      this.ws.once('error', () => resolve());
    });
    this.done = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.transcript.closeCode = code;
        this.transcript.closeReason = reason.toString();
        resolve();
      });
      this.ws.once('unexpected-response', () => resolve());
      this.ws.once('error', () => resolve());
    });
    this.ws.on('message', (data) => {
      this.lastActivity = Date.now();
      this.transcript.frames.push(JSON.parse(data.toString()));
    });
    this.ws.on('error', () => undefined);
  }

  open(): Promise<void> {
    return this.opened;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Waits until `predicate` holds (or the socket closes, or the timeout passes). */
  async waitFor(predicate: (frames: Record<string, any>[]) => boolean, timeoutMs = 20_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (predicate(this.transcript.frames)) return true;
      if (this.transcript.closeCode !== null || (this.transcript.handshake !== 0 && this.transcript.handshake !== 101)) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  /** Waits for `quietMs` without a frame (or the close), then returns the transcript. */
  async settle(quietMs = 600, timeoutMs = 15_000): Promise<SocketTranscript> {
    const deadline = Date.now() + timeoutMs;
    this.lastActivity = Date.now();
    while (Date.now() < deadline && this.transcript.closeCode === null && Date.now() - this.lastActivity < quietMs) {
      if (this.transcript.handshake !== 0 && this.transcript.handshake !== 101) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    return this.transcript;
  }

  /** Waits for the server's close, up to `timeoutMs`. */
  async closed(timeoutMs = 15_000): Promise<SocketTranscript> {
    await Promise.race([this.done, new Promise((r) => setTimeout(r, timeoutMs))]);
    return this.transcript;
  }

  async close(): Promise<SocketTranscript> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    await Promise.race([this.done, new Promise((r) => setTimeout(r, 2000))]);
    return this.transcript;
  }
}
