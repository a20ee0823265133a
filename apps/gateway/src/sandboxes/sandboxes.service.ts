import { ForbiddenException, Injectable, Logger, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import { CreateSandboxRequest, parseUuid, utcTimestamp, uuidHex } from '@berth/contracts';
import { SandboxRepository } from '@berth/persistence';
import type { SandboxRow } from '@berth/persistence';
import { SandboxManager, SandboxNetworkRefused, SandboxNotFound } from '@berth/sandbox';
import type { CreatedSandbox } from '@berth/sandbox';
import type { Principal } from '../common/tenant.decorator';
import { QuotaService } from '../quotas/quota.service';

export const sandboxNotFound = (id: string) => new NotFoundException({ detail: `Sandbox not found: ${id}` });

/** The runtime API: sandboxes a tenant creates, lists, pauses, resumes and deletes. */
@Injectable()
export class SandboxesService {
  private readonly logger = new Logger('Sandboxes');

  constructor(
    private readonly rows: SandboxRepository,
    private readonly sandboxes: SandboxManager,
    private readonly quotas: QuotaService,
  ) {}

  info(row: SandboxRow, baseUrl: string) {
    return {
      id: row.id,
      status: row.status,
      status_reason: row.statusReason,
      desired_state: row.desiredState,
      driver: row.driver,
      url: `${baseUrl}/sandboxes/${row.id}`,
      env: Object.keys(row.env as Record<string, string>).sort(),
      network: this.sandboxes.networkOf(row),
      idle_timeout: row.idleTimeoutSeconds,
      ttl: row.ttlSeconds,
      created_at: utcTimestamp(row.createdAt),
      updated_at: utcTimestamp(row.updatedAt),
      last_activity_at: utcTimestamp(row.lastActivityAt),
    };
  }

  /** The caller's sandbox; another tenant's answers 404. */
  async require(p: Principal, id: string): Promise<SandboxRow> {
    const row = await this.rows.find(p, id);
    if (!row) throw sandboxNotFound(id);
    return row;
  }

  /** Creates the sandbox and starts its executor before answering, so it is usable at once. */
  async create(p: Principal, req: CreateSandboxRequest): Promise<SandboxRow> {
    const made = await this.quotas.admitSandbox(p.tenantId, () =>
      refusedAsForbidden(() => this.sandboxes.make(p, { env: req.env, network: req.network, idleTimeoutSeconds: req.idle_timeout, ttlSeconds: req.ttl ?? null })),
    );
    return this.start(p, made.id, made);
  }

  async resume(p: Principal, id: string): Promise<SandboxRow> {
    await this.require(p, id);
    await this.quotas.checkSandboxStart(p.tenantId, id);
    return this.start(p, id);
  }

  async pause(p: Principal, id: string): Promise<SandboxRow> {
    await this.sandboxes.pause(p, await this.require(p, id));
    return this.require(p, id);
  }

  async remove(p: Principal, id: string): Promise<void> {
    await this.sandboxes.destroy(p, await this.require(p, id));
  }

  async list(p: Principal, q: { page_id?: string; limit: number; status?: string }) {
    const rows = await this.rows.page(p, { status: q.status, startId: q.page_id ? parseUuid(q.page_id) : null, limit: q.limit });
    const more = rows.length > q.limit;
    return { rows: rows.slice(0, q.limit), nextPageId: more ? uuidHex(rows[q.limit].id) : null };
  }

  /** Starts the sandbox (`created`: just made) and answers its row as it is then. */
  private async start(p: Principal, id: string, created?: CreatedSandbox): Promise<SandboxRow> {
    try {
      return await this.sandboxes.ensureRunningRow(p, id, { created });
    } catch (err) {
      if (err instanceof SandboxNotFound) throw sandboxNotFound(id);
      if (err instanceof SandboxNetworkRefused) throw forbidden(err);
      this.logger.error(`sandbox ${id} did not start: ${(err as Error).message}`);
      throw new ServiceUnavailableException({ detail: `Sandbox ${id} could not be started: ${(err as Error).message}` });
    }
  }
}

const forbidden = (err: SandboxNetworkRefused) => new ForbiddenException({ detail: err.message });

async function refusedAsForbidden<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    throw err instanceof SandboxNetworkRefused ? forbidden(err) : err;
  }
}
