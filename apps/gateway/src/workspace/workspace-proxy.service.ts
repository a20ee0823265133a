import { BadRequestException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { DEFAULT_TENANT_ID, Database } from '@berth/persistence';
import { SANDBOX_TOKEN_HEADER, SandboxHandle, SandboxManager } from '@berth/sandbox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IncomingMessage, request as httpRequest } from 'node:http';
import type { Principal } from '../common/tenant.decorator';

/** The embedded default's own sandbox: top-level /api/file|bash|git act on it, as the OpenHands local server does. */
export const DEFAULT_SANDBOX_ID = '00000000-0000-4000-8000-00000000000d';

const FORWARDED_REQUEST_HEADERS = ['content-type', 'content-length', 'accept', 'range'];
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'content-length', 'content-disposition', 'cache-control', 'last-modified', 'etag', 'accept-ranges', 'content-range'];
const TOUCH_EVERY_MS = 10_000;

/**
 * Workspace operations (files, bash, git) run in the sandbox's executor; the gateway forwards each
 * call there as it is — bodies streamed both ways, never held whole in memory — with the sandbox's
 * token added. A stopped sandbox is started again by the call that needs it.
 */
@Injectable()
export class WorkspaceProxyService {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly sandboxes: SandboxManager,
    private readonly db: Database,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {}

  /** Which sandbox a workspace call is for: the URL's, or the embedded default's own. */
  async sandboxFor(p: Principal): Promise<string> {
    if (p.sandboxId) return p.sandboxId;
    if (!this.config.databaseUrl && p.tenantId === DEFAULT_TENANT_ID) {
      await this.db.prisma.sandbox.upsert({
        where: { id: DEFAULT_SANDBOX_ID },
        create: { id: DEFAULT_SANDBOX_ID, tenantId: DEFAULT_TENANT_ID, driver: this.sandboxes.driverKind, status: 'starting' },
        update: {},
      });
      return DEFAULT_SANDBOX_ID;
    }
    throw new BadRequestException({
      detail: 'File, bash and git routes act on one sandbox: call them under /sandboxes/{sandbox_id}/api/... (create one with POST /api/sandboxes)',
    });
  }

  async forward(p: Principal, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const sandboxId = await this.sandboxFor(p);
    const handle = await this.handle(sandboxId);
    const headers: Record<string, string> = { [SANDBOX_TOKEN_HEADER]: handle.token };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    let url = request.url;
    let body: string | undefined;
    if (request.method === 'GET' && Array.isArray(request.body)) {
      // OpenHands' batch reads take a JSON list in a GET body: sent on as a query instead.
      const query = new URLSearchParams();
      for (const id of request.body) query.append('event_ids', String(id));
      url += `${url.includes('?') ? '&' : '?'}${query}`;
      delete headers['content-length'];
      delete headers['content-type'];
    } else if (request.body !== undefined) {
      // A JSON body Fastify already read (bash routes): sent on as JSON.
      body = JSON.stringify(request.body);
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const target = new URL(url, handle.url);
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = httpRequest(target, { method: request.method, headers }, resolve);
      outgoing.on('error', reject);
      // The client went away before its answer was complete: stop the executor's work on it too.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) outgoing.destroy();
      });
      if (body !== undefined) outgoing.end(body);
      else if (request.method === 'GET' || request.method === 'HEAD') outgoing.end();
      // Uploads: piped with backpressure, so the gateway holds a few chunks at most.
      else request.raw.pipe(outgoing);
    });
    this.touch(sandboxId);
    reply.status(upstream.statusCode ?? 502);
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const value = upstream.headers[name];
      if (typeof value === 'string') reply.header(name, value);
    }
    await reply.send(upstream);
  }

  /** The executor's address and token, starting it when needed (404 for a sandbox gone meanwhile). */
  async handle(sandboxId: string): Promise<SandboxHandle> {
    try {
      return await this.sandboxes.ensureRunning(sandboxId);
    } catch (err) {
      if ((err as { code?: string }).code === 'P2025') throw new NotFoundException({ detail: `Sandbox not found: ${sandboxId}` });
      throw err;
    }
  }

  /** Workspace calls keep the sandbox from being reaped; written at most every few seconds. */
  touch(sandboxId: string): void {
    const now = Date.now();
    if (now - (this.touched.get(sandboxId) ?? 0) < TOUCH_EVERY_MS) return;
    this.touched.set(sandboxId, now);
    void this.sandboxes.touch(sandboxId).catch(() => undefined);
  }
}
