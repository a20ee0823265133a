import { BadRequestException, Injectable, NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import { executorPath, executorRouteOf, matchExecutorRoute, SANDBOX_TOKEN_HEADER } from '@berth/contracts';
import { executorRequestOptions, SandboxHandle, SandboxManager } from '@berth/sandbox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IncomingMessage, request as httpRequest } from 'node:http';
import { isAbsolute, join, normalize } from 'node:path';
import { Readable } from 'node:stream';
import { contentTypeOf } from './content-type';
import type { Principal } from '../common/tenant.decorator';
import { SharedState } from '../quotas/shared-state';
import { inside, WorkspaceRoutingService, WorkspaceTarget } from './workspace-routing.service';

const FORWARDED_REQUEST_HEADERS = ['content-type', 'content-length', 'accept', 'range'];
const FORWARDED_RESPONSE_HEADERS = [
  'content-type',
  'content-length',
  'content-disposition',
  'cache-control',
  'last-modified',
  'etag',
  'accept-ranges',
  'content-range',
  // What a workspace archive says about itself (`GET /api/file/archive`).
  'x-archive-repo-remote',
  'x-archive-branch',
  'x-archive-head-commit',
  'x-archive-repo-root',
  'x-archive-base-commit',
  'x-archive-base-ref',
];
/** How long the sandbox a background command was started in stays known (OpenHands keeps bash events an hour by default). */
const COMMAND_SANDBOX_TTL_MS = 60 * 60 * 1000;
/** A start_bash_command answer is one BashCommand (its command included): JSON this size is remembered. */
const MAX_COMMAND_ANSWER_BYTES = 1024 * 1024;

/**
 * The command a bash call names without a path of its own (`bash_events/search?command_id__eq=`,
 * `bash_events/{id}`, `bash_commands/{id}/stop`): the SDK polls a command it started elsewhere so.
 */
function commandNamedBy(pathname: string, query: URLSearchParams): string | null {
  if (matchExecutorRoute('bashEventsSearch', pathname)) return query.get('command_id__eq');
  const [id] = matchExecutorRoute('bashEvent', pathname) ?? matchExecutorRoute('bashCommandStop', pathname) ?? [];
  return id !== undefined && /^[0-9a-fA-F-]{32,36}$/.test(id) ? id : null;
}
/** What was read of an answer, then the rest of it. */
async function* passOn(read: Buffer[], rest: AsyncIterator<unknown>): AsyncGenerator<Buffer> {
  yield* read;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value as Buffer;
}
const commandKey = (p: Principal, commandId: string) => `bash-command:${p.tenantId}:${commandId.replace(/-/g, '').toLowerCase()}`;

/** OpenHands' runtime routes refuse a path outside the conversation's working dir (422). */
export function requireInConversation(workingDir: string, path: string, name: string): void {
  if (!isAbsolute(path) || path.includes('\0') || !inside(workingDir, normalize(path))) {
    throw new UnprocessableEntityException({ detail: `${name} must be inside the conversation workspace` });
  }
}
const TOUCH_EVERY_MS = 10_000;

/**
 * Workspace operations (files, bash, git) run in the sandbox's executor; the gateway forwards each
 * call there as it is — bodies streamed both ways, never held whole in memory — with the sandbox's
 * token added. A stopped sandbox is started again by the call that needs it. Calls without a
 * `/sandboxes/{id}` prefix are routed by the path they act on (WorkspaceRoutingService).
 */
@Injectable()
export class WorkspaceProxyService {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly sandboxes: SandboxManager,
    private readonly routing: WorkspaceRoutingService,
    private readonly shared: SharedState,
  ) {}

  /**
   * A workspace call forwarded to its sandbox: `/api/file|bash|git/*` routed by the path it acts on,
   * or with `conversation` (`/api/conversations/{id}/…`, OpenHands' runtime routes) to that
   * conversation's sandbox, its paths confined to the conversation's working dir.
   */
  async forward(p: Principal, request: FastifyRequest, reply: FastifyReply, conversation?: { id: string; executorPath: string }): Promise<void> {
    const parsed = new URL(request.url, 'http://gateway');
    let json = request.body !== null && typeof request.body === 'object' && !Array.isArray(request.body) ? (request.body as Record<string, unknown>) : null;
    // The path a call acts on: `path` in the query (files, git) or `cwd` in the body (bash).
    const queryPath = parsed.searchParams.get('path');
    let cwd = typeof json?.cwd === 'string' ? json.cwd : null;
    let target: WorkspaceTarget;
    let pathname = parsed.pathname;
    if (conversation) {
      const owner = await this.routing.conversation(p, conversation.id);
      pathname = conversation.executorPath;
      if (queryPath !== null) requireInConversation(owner.workingDir, queryPath, 'path');
      if (json && executorRouteOf(pathname, ['bashStartCommand', 'bashExecuteCommand'])) {
        // A command runs in the conversation's working dir unless it names a folder inside it.
        cwd = cwd === null || cwd === '' ? owner.workingDir : isAbsolute(cwd) ? cwd : join(owner.workingDir, cwd);
        requireInConversation(owner.workingDir, cwd, 'cwd');
        json = { ...json, cwd };
      }
      target = await this.routing.inConversation(p, owner);
    } else {
      const routedBy = queryPath ?? cwd;
      // A call without a path may name a background command: it goes where that command ran.
      const commandTarget = routedBy === null ? await this.commandSandbox(p, pathname, parsed.searchParams) : null;
      target = commandTarget ?? (await this.routing.route(p, routedBy));
    }
    const { sandboxId, handle, toSandboxPath } = target;
    if (queryPath !== null && isAbsolute(queryPath)) parsed.searchParams.set('path', toSandboxPath(queryPath));
    const headers: Record<string, string> = { [SANDBOX_TOKEN_HEADER]: handle.token };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    let body: string | undefined;
    if (request.method === 'GET' && Array.isArray(request.body)) {
      // OpenHands' batch reads take a JSON list in a GET body: sent on as a query instead.
      for (const id of request.body) parsed.searchParams.append('event_ids', String(id));
      delete headers['content-length'];
      delete headers['content-type'];
    } else if (request.body !== undefined) {
      // A JSON body Fastify already read (bash routes): sent on as JSON, its cwd as the sandbox knows it.
      body = JSON.stringify(cwd !== null && isAbsolute(cwd) ? { ...json, cwd: toSandboxPath(cwd) } : (json ?? request.body));
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const upstream = await this.send(handle, request.method, pathname + parsed.search, headers, reply, body ?? request);
    // Once answered: the activity write is bookkeeping the caller need not wait behind.
    reply.raw.once('close', () => this.touch(p, sandboxId));
    reply.status(upstream.statusCode ?? 502);
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const value = upstream.headers[name];
      if (typeof value === 'string') reply.header(name, value);
    }
    if (matchExecutorRoute('bashStartCommand', pathname) && upstream.statusCode === 200 && !p.sandboxId) {
      await reply.send(await this.rememberCommand(p, sandboxId, upstream));
      return;
    }
    await reply.send(upstream);
  }

  /**
   * A background command runs in the sandbox its cwd routed it to, but the calls that follow it
   * (search by command id, stop) carry no path: the command's sandbox is remembered, per tenant, on
   * every replica, so they reach it.
   */
  private async rememberCommand(p: Principal, sandboxId: string, upstream: IncomingMessage): Promise<Buffer | Readable> {
    const chunks: Buffer[] = [];
    let size = 0;
    const pieces = upstream[Symbol.asyncIterator]();
    for (let next = await pieces.next(); !next.done; next = await pieces.next()) {
      chunks.push(next.value as Buffer);
      size += (next.value as Buffer).length;
      // Larger than a BashCommand should be: passed on as it comes, not remembered.
      if (size > MAX_COMMAND_ANSWER_BYTES) return Readable.from(passOn(chunks, pieces));
    }
    const body = Buffer.concat(chunks);
    const id = (() => {
      try {
        return (JSON.parse(body.toString('utf8')) as { id?: unknown }).id;
      } catch {
        return undefined;
      }
    })();
    if (typeof id === 'string') await this.shared.remember(commandKey(p, id), sandboxId, COMMAND_SANDBOX_TTL_MS);
    return body;
  }

  /** The sandbox of a command the call names (see rememberCommand), or null. */
  private async commandSandbox(p: Principal, pathname: string, query: URLSearchParams): Promise<WorkspaceTarget | null> {
    if (p.sandboxId) return null;
    const commandId = commandNamedBy(pathname, query);
    const sandboxId = commandId ? await this.shared.recall(commandKey(p, commandId)) : null;
    if (!sandboxId) return null;
    return { sandboxId, handle: await this.routing.handle(p, sandboxId), toSandboxPath: (path) => path };
  }

  /**
   * `GET /api/conversations/{id}/workspace/{path}` (contract §3.7): a file of the conversation's
   * working dir with its content type inferred, as a static web server would serve it (a folder
   * serves its index.html); nothing outside the working dir.
   */
  async serveWorkspaceFile(p: Principal, conversation: { working_dir: string }, relativePath: string, reply: FastifyReply): Promise<void> {
    const root = normalize(conversation.working_dir);
    const wanted = normalize(join(root, relativePath));
    if (wanted !== root && !wanted.startsWith(root.endsWith('/') ? root : `${root}/`)) {
      throw new BadRequestException({ detail: 'Path is outside the workspace' });
    }
    const { sandboxId, handle, toSandboxPath } = await this.routing.route(p, wanted);
    const download = (path: string) =>
      this.send(handle, 'GET', executorPath('fileDownload', {}, { path: toSandboxPath(path) }), { [SANDBOX_TOKEN_HEADER]: handle.token }, reply);
    let served = wanted;
    let upstream = await download(served);
    if (upstream.statusCode === 400) {
      // Not a file: a folder serves its index.html.
      upstream.resume();
      served = join(wanted, 'index.html');
      upstream = await download(served);
      if (upstream.statusCode === 404) {
        upstream.resume();
        throw new NotFoundException({ detail: 'No index.html in directory' });
      }
    }
    this.touch(p, sandboxId);
    if (upstream.statusCode !== 200) {
      reply.status(upstream.statusCode ?? 502).header('content-type', 'application/json');
      await reply.send(upstream);
      return;
    }
    reply.status(200).header('content-type', contentTypeOf(served));
    if (typeof upstream.headers['content-length'] === 'string') reply.header('content-length', upstream.headers['content-length']);
    await reply.send(upstream);
  }

  /** One request to a sandbox's executor; the answer comes back as a stream. */
  private send(
    handle: SandboxHandle,
    method: string,
    pathAndQuery: string,
    headers: Record<string, string>,
    reply: FastifyReply,
    body?: string | FastifyRequest,
  ): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = httpRequest({ ...executorRequestOptions(handle.url, pathAndQuery), method, headers }, resolve);
      outgoing.on('error', reject);
      // The client went away before its answer was complete: stop the executor's work on it too.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) outgoing.destroy();
      });
      if (typeof body === 'string') outgoing.end(body);
      else if (body === undefined || method === 'GET' || method === 'HEAD') outgoing.end();
      // Uploads: piped with backpressure, so the gateway holds a few chunks at most.
      else body.raw.pipe(outgoing);
    });
  }

  /** Workspace calls keep the sandbox from being reaped; written at most every few seconds. */
  touch(p: Principal, sandboxId: string): void {
    const now = Date.now();
    if (now - (this.touched.get(sandboxId) ?? 0) < TOUCH_EVERY_MS) return;
    this.touched.set(sandboxId, now);
    void this.sandboxes.touch(p, sandboxId).catch(() => undefined);
  }
}
