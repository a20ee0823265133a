import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Database, SandboxRepository } from '@berth/persistence';
import { executorPath, SANDBOX_TOKEN_HEADER } from '@berth/contracts';
import { executorWebSocketUrl } from '@berth/sandbox';
import { WebSocket } from 'ws';
import type { Principal } from '../common/tenant.decorator';
import { WorkspaceProxyService } from '../workspace/workspace-proxy.service';
import { WorkspaceRoutingService } from '../workspace/workspace-routing.service';
import { SocketAuth } from './socket-auth';
import { closeOnFailure, SocketRequest, WsRouter } from './ws-router';

const NOT_FOUND = 4004;

/**
 * `WS /sockets/bash-events` (contract §4.2) of a sandbox: authenticated here, then joined frame for
 * frame to the sandbox's executor, which keeps the bash events and streams them.
 */
@Injectable()
export class BashEventsSocket implements OnModuleInit {
  private readonly logger = new Logger('BashEventsSocket');

  constructor(
    private readonly router: WsRouter,
    private readonly socketAuth: SocketAuth,
    private readonly db: Database,
    private readonly sandboxRows: SandboxRepository,
    private readonly workspace: WorkspaceProxyService,
    private readonly routing: WorkspaceRoutingService,
  ) {}

  onModuleInit(): void {
    this.router.register('/sockets/bash-events', (ws, req) => {
      this.handle(ws, req).catch((err: Error) => closeOnFailure(this.logger, ws, 'bash-events socket', err));
    });
  }

  private async handle(client: WebSocket, req: SocketRequest): Promise<void> {
    await this.db.ready;
    const authenticated = await this.socketAuth.authenticate(client, req);
    if (!authenticated || client.readyState !== WebSocket.OPEN) return;
    const principal: Principal = req.sandboxId ? { ...authenticated, sandboxId: req.sandboxId } : authenticated;
    if (req.sandboxId && !(await this.sandboxRows.exists(principal, req.sandboxId))) {
      client.close(NOT_FOUND, 'Sandbox not found');
      return;
    }
    // Without a sandbox prefix: the tenant's home sandbox, where Agent Canvas's conversations work.
    const { sandboxId, handle } = await this.routing.route(principal, null);
    const query = new URLSearchParams(req.query);
    query.delete('session_api_key');
    const upstream = new WebSocket(executorWebSocketUrl(handle.url, executorPath('bashEventsSocket', {}, query)), {
      headers: { [SANDBOX_TOKEN_HEADER]: handle.token },
    });
    const pending: string[] = [];
    upstream.on('open', () => {
      for (const frame of pending.splice(0)) upstream.send(frame);
    });
    upstream.on('message', (data, isBinary) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      this.workspace.touch(principal, sandboxId);
    });
    client.on('message', (data) => {
      const frame = data.toString('utf8');
      if (upstream.readyState === WebSocket.OPEN) upstream.send(frame);
      else pending.push(frame);
      this.workspace.touch(principal, sandboxId);
    });
    const closeBoth = (code: number, reason: string) => {
      const safe = code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 ? code : 1011;
      if (client.readyState === WebSocket.OPEN) client.close(safe, reason);
      if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING) upstream.terminate();
    };
    upstream.on('close', (code, reason) => closeBoth(code, reason.toString()));
    upstream.on('error', (err) => closeBoth(1011, `Sandbox unavailable: ${err.message}`));
    client.on('close', () => {
      if (upstream.readyState !== WebSocket.CLOSED) upstream.close();
    });
  }
}
