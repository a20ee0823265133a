import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { WebSocket } from 'ws';
import { ApiKeyService } from '../auth/api-key.service';
import type { Principal } from '../common/tenant.decorator';
import { QuotaService } from '../quotas/quota.service';
import { TenancyEpoch } from '../quotas/tenancy-epoch';
import { SocketRequest, WsRouter } from './ws-router';

export const AUTH_FAILED = 4001;
const TRY_AGAIN_LATER = 1013;
/** A refused socket that does not take the close frame is dropped after this long. */
const CLOSE_GRACE_MS = 1000;
/** How often open sockets look whether their key was revoked or their tenant deleted (the epoch moved). */
const RECHECK_MS = 1000;
/** Keys are looked at again this often even when nothing was revoked, to catch an expiry. */
const EXPIRY_CHECK_MS = 30_000;

/** Is this frame exactly an auth object ({type:"auth", session_api_key})? Such later frames are ignored. */
export function isAuthFrame(frame: unknown): frame is { type: 'auth'; session_api_key?: string } {
  if (!frame || typeof frame !== 'object' || Array.isArray(frame)) return false;
  const keys = Object.keys(frame);
  return (frame as { type?: unknown }).type === 'auth' && keys.every((k) => k === 'type' || k === 'session_api_key');
}

const PRIVATE_V4 = [/^127\./, /^10\./, /^192\.168\./, /^172\.(1[6-9]|2\d|3[01])\./, /^169\.254\./];

/** Loopback, private or link-local: where a proxy in front of Berth (an ingress) connects from. */
function isPrivateAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return PRIVATE_V4.some((r) => r.test(v4));
  const v6 = address.toLowerCase();
  return v6 === '::1' || /^f[cd]/.test(v6) || /^fe[89ab]/.test(v6);
}

/**
 * The address a socket is counted under: the peer, or, when the peer is a proxy on a private
 * network, the last X-Forwarded-For hop (the one that proxy added). A client on the internet cannot
 * choose its address by sending the header itself.
 */
export function clientAddress(remoteAddress: string | undefined, headers: IncomingHttpHeaders): string {
  const peer = remoteAddress ?? 'unknown';
  const forwarded = headers['x-forwarded-for'];
  if (typeof forwarded !== 'string' || !isPrivateAddress(peer)) return peer;
  const hops = forwarded.split(',').map((h) => h.trim()).filter(Boolean);
  return hops.at(-1) ?? peer;
}

/**
 * Socket auth as OpenHands does it (contract §1.3): the `session_api_key` query parameter, else the
 * X-Session-API-Key header; with neither (and keys configured) the first frame must be
 * {"type":"auth","session_api_key":…} within BERTH_WS_AUTH_TIMEOUT_MS. A client address may hold
 * only so many sockets waiting for that frame; an authenticated socket takes one of its key's
 * socket slots while open, and is closed (4001) once its key is revoked or expires or its tenant is
 * deleted. Refusals close the socket (4001 auth, 1013 over a limit) and resolve null.
 */
@Injectable()
export class SocketAuth implements OnModuleDestroy {
  /** unauthenticated sockets waiting for their auth frame, per client address */
  private readonly pending = new Map<string, number>();
  /** open sockets and the key each came in with */
  private readonly open = new Map<WebSocket, string>();
  private checkedEpoch = -1;
  private checkedAt = 0;
  private readonly rechecker: NodeJS.Timeout;

  constructor(
    private readonly keys: ApiKeyService,
    private readonly quotas: QuotaService,
    private readonly epoch: TenancyEpoch,
    @Inject(BERTH_CONFIG) private readonly config: BerthConfig,
  ) {
    this.rechecker = setInterval(() => void this.recheck().catch(() => undefined), RECHECK_MS);
    this.rechecker.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.rechecker);
  }

  async authenticate(ws: WebSocket, req: SocketRequest): Promise<Principal | null> {
    const identified = await this.identify(ws, req);
    if (!identified || ws.readyState !== WebSocket.OPEN) return null;
    const { principal, key } = identified;
    if (!(await this.quotas.openSocket(principal, ws))) return refuse(ws, TRY_AGAIN_LATER, 'Too many sockets for this API key');
    if (key !== undefined) {
      this.open.set(ws, key);
      ws.once('close', () => this.open.delete(ws));
    }
    req.access.authenticated(principal);
    return principal;
  }

  /** Closes the open sockets whose key no longer resolves, looking once the epoch moved (or now and then, for expiries). */
  private async recheck(): Promise<void> {
    if (!this.open.size) return;
    const epoch = await this.epoch.current();
    if (epoch === this.checkedEpoch && Date.now() - this.checkedAt < EXPIRY_CHECK_MS) return;
    this.checkedEpoch = epoch;
    this.checkedAt = Date.now();
    for (const [ws, key] of this.open) {
      if (!(await this.keys.resolve(key))) {
        this.open.delete(ws);
        refuse(ws, AUTH_FAILED, 'API key revoked or expired');
      }
    }
  }

  private async identify(ws: WebSocket, req: SocketRequest): Promise<{ principal: Principal; key?: string } | null> {
    const header = req.headers['x-session-api-key'];
    const offered = req.query.get('session_api_key') ?? (Array.isArray(header) ? header[0] : header);
    if (offered !== undefined) return this.withKey(ws, offered);
    if (this.keys.isOpen) return { principal: (await this.keys.resolve(undefined)) as Principal };

    const address = clientAddress(req.remoteAddress, req.headers);
    const waiting = this.pending.get(address) ?? 0;
    if (waiting >= this.config.wsMaxPendingPerAddress) return refuse(ws, TRY_AGAIN_LATER, 'Too many unauthenticated sockets from this address');
    this.pending.set(address, waiting + 1);
    let frameKey: string | null;
    try {
      frameKey = await authFrame(ws, this.config.wsAuthTimeoutMs);
    } finally {
      const left = (this.pending.get(address) ?? 1) - 1;
      if (left) this.pending.set(address, left);
      else this.pending.delete(address);
    }
    if (frameKey === null) return refuse(ws, AUTH_FAILED, 'Authentication failed');
    return this.withKey(ws, frameKey);
  }

  private async withKey(ws: WebSocket, key: string): Promise<{ principal: Principal; key: string } | null> {
    const principal = await this.keys.resolve(key);
    return principal ? { principal, key } : refuse(ws, AUTH_FAILED, 'Authentication failed');
  }
}

/** Closes the socket, dropping it if the peer does not take the close frame (a silent client holds nothing). */
function refuse(ws: WebSocket, code: number, reason: string): null {
  if (ws.readyState === WebSocket.OPEN) WsRouter.closeOrDrop(ws, code, reason, CLOSE_GRACE_MS);
  return null;
}

/** The key of the first frame if it is an auth frame; null for anything else, a close or the timeout. */
function authFrame(ws: WebSocket, timeoutMs: number): Promise<string | null> {
  return new Promise<string | null>((resolve) => {
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (key: string | null) => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      resolve(key);
    };
    const onMessage = (data: Buffer, isBinary: boolean) => {
      try {
        const frame = JSON.parse(isBinary ? '' : data.toString('utf8'));
        done(isAuthFrame(frame) && typeof frame.session_api_key === 'string' ? frame.session_api_key : null);
      } catch {
        done(null);
      }
    };
    const onClose = () => done(null);
    ws.on('message', onMessage);
    ws.on('close', onClose);
  });
}
