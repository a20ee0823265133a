import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { rootLogger } from '@berth/logging';
import { openWebSockets } from '@berth/metrics';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { match, MatchFunction } from 'path-to-regexp';
import { accessLogger, SocketAccess } from '../common/access-log';
import { isDependencyOutage } from '../common/outage';
import { requestIdOf } from '../common/request-id';
import { sandboxOfRequest, stripSandboxPrefix } from '../common/sandbox-prefix';
import { WebSocket, WebSocketServer } from 'ws';

export interface SocketRequest {
  params: Record<string, string>;
  /** the sandbox of a `/sandboxes/{id}/sockets/…` connection */
  sandboxId?: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** the peer's address (a proxy's, behind one) */
  remoteAddress?: string;
  /** its access-log lines (SocketAuth says who it is) */
  access: SocketAccess;
}

export type SocketHandler = (ws: WebSocket, req: SocketRequest) => void;
/** Checks the path parameters and query before the handshake; false refuses it (HTTP 403, as FastAPI refuses invalid ones). */
export type SocketParamsCheck = (params: Record<string, string>, query: URLSearchParams) => boolean;

const PING_INTERVAL_MS = 30_000;

/**
 * Raw WebSockets on the HTTP port, routed by path pattern (`/sockets/events/:conversation_id`).
 * Nest's WsAdapter matches exact paths and wraps frames in {event,data}; the OpenHands protocol needs
 * path parameters and bare JSON frames, so sockets are routed here and handled by plain services.
 */
@Injectable()
export class WsRouter implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('WsRouter');
  private readonly routes: { pattern: string; match: MatchFunction<Record<string, string>>; handler: SocketHandler; accepts?: SocketParamsCheck }[] = [];
  private readonly wss: WebSocketServer;
  private server?: Server;
  private pinger?: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();
  private readonly accessLog = accessLogger(rootLogger());

  constructor(
    private readonly host: HttpAdapterHost,
    @Inject(BERTH_CONFIG) config: BerthConfig,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxBodyBytes });
  }

  register(pattern: string, handler: SocketHandler, accepts?: SocketParamsCheck): void {
    this.routes.push({ pattern, match: match<Record<string, string>>(pattern, { decode: decodeURIComponent }), handler, accepts });
  }

  /** The registered socket paths (the auth matrix walks them all). */
  get patterns(): string[] {
    return this.routes.map((r) => r.pattern);
  }

  onApplicationBootstrap(): void {
    this.server = this.host.httpAdapter.getHttpServer() as Server;
    this.server.on('upgrade', this.onUpgrade);
    // Dead peers (a laptop closed mid-stream) are found by ping/pong and dropped.
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (!this.alive.has(ws)) {
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, PING_INTERVAL_MS);
    this.pinger.unref();
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let url: URL;
    try {
      url = new URL(stripSandboxPrefix(req), 'http://localhost');
    } catch {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    for (const route of this.routes) {
      let found: ReturnType<MatchFunction<Record<string, string>>>;
      try {
        found = route.match(url.pathname);
      } catch {
        continue;
      }
      if (!found) continue;
      const params = found.params;
      if (route.accepts && !route.accepts(params, url.searchParams)) {
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const kind = { kind: socketKind(route.pattern) };
        openWebSockets.inc(kind);
        ws.once('close', () => openWebSockets.dec(kind));
        this.alive.add(ws);
        ws.on('pong', () => this.alive.add(ws));
        ws.on('error', (err) => this.logger.debug(`socket error: ${err.message}`));
        const access = new SocketAccess(this.accessLog, ws, route.pattern, requestIdOf(req), params.conversation_id);
        route.handler(ws, { params, query: url.searchParams, headers: req.headers, remoteAddress: req.socket.remoteAddress, sandboxId: sandboxOfRequest(req), access });
      });
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  };

  /**
   * Graceful shutdown, before the HTTP server closes (it waits for every connection): each socket is
   * told the server is going away (1001); one that does not answer within a second is dropped.
   */
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.pinger);
    this.server?.off('upgrade', this.onUpgrade);
    const closing = [...this.wss.clients].map(
      (ws) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            ws.terminate();
            resolve();
          }, 1000);
          ws.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          ws.close(1001, 'Server shutting down');
        }),
    );
    await Promise.all(closing);
    this.wss.close();
  }

  /** Closes a socket; drops it if the peer does not take the close frame in time (a stalled reader). */
  static closeOrDrop(ws: WebSocket, code: number, reason: string, graceMs = 30_000): void {
    ws.close(code, reason);
    const timer = setTimeout(() => ws.terminate(), graceMs);
    timer.unref();
    ws.once('close', () => clearTimeout(timer));
  }
}

/** A route's metrics label: its path after `/sockets/` (`events`, `session`, `bash-events`), parameters left out. */
function socketKind(pattern: string): string {
  return pattern.replace(/^\/sockets\//, '').split('/')[0];
}

/**
 * A socket handler failed: the socket is closed, never left open without frames. A dependency
 * outage closes it 1013 (try again later) so the client retries; anything else 1011.
 */
export function closeOnFailure(logger: Logger, ws: WebSocket, what: string, err: Error): void {
  const outage = isDependencyOutage(err);
  if (outage) logger.warn(`${what}: dependency unavailable: ${err.message.split('\n').pop()}`);
  else logger.error(`${what} failed: ${err.message.split('\n').pop()}`);
  if (ws.readyState === WebSocket.OPEN) {
    WsRouter.closeOrDrop(ws, outage ? 1013 : 1011, outage ? 'Service temporarily unavailable, retry later' : 'Internal error');
  }
}
