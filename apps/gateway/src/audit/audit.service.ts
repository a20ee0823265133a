import { Injectable } from '@nestjs/common';
import { utcTimestamp } from '@berth/contracts';
import type { AuditAction, AuditTarget } from '@berth/contracts';
import { Database } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';

/** A caller of /api/admin/*: which BERTH_ADMIN_API_KEYS key it used. */
export interface AdminCaller {
  adminKeyIndex: number;
  requestId?: string;
}

function isAdmin(actor: Principal | AdminCaller): actor is AdminCaller {
  return 'adminKeyIndex' in actor;
}

/** The audit log: who did what to which conversation, sandbox, tenant or key, and in which request. */
@Injectable()
export class AuditService {
  constructor(private readonly db: Database) {}

  /** Records a done action; an admin's action is filed under the tenant it touched. */
  async record(actor: Principal | AdminCaller, action: AuditAction, targetType: AuditTarget, targetId: string, tenantId?: string): Promise<void> {
    await this.db.prisma.auditRecord.create({
      data: {
        tenantId: tenantId ?? (isAdmin(actor) ? null : actor.tenantId),
        keyId: isAdmin(actor) ? null : actor.keyId,
        adminKeyIndex: isAdmin(actor) ? actor.adminKeyIndex : null,
        action,
        targetType,
        targetId,
        requestId: actor.requestId ?? null,
      },
    });
  }

  /** Newest first; `page_id` is the seq to start at. */
  async list(q: { tenant_id?: string; limit: number; page_id?: string }) {
    const rows = await this.db.prisma.auditRecord.findMany({
      where: { ...(q.tenant_id ? { tenantId: q.tenant_id } : {}), ...(q.page_id ? { seq: { lte: BigInt(q.page_id) } } : {}) },
      orderBy: { seq: 'desc' },
      take: q.limit + 1,
    });
    return {
      items: rows.slice(0, q.limit).map((r) => ({
        seq: String(r.seq),
        at: utcTimestamp(r.at),
        tenant_id: r.tenantId,
        key_id: r.keyId,
        admin_key_index: r.adminKeyIndex,
        action: r.action,
        target_type: r.targetType,
        target_id: r.targetId,
        request_id: r.requestId,
      })),
      next_page_id: rows.length > q.limit ? String(rows[q.limit].seq) : null,
    };
  }
}
