import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { dirname, isAbsolute, join, normalize, relative } from 'node:path';
import { DEFAULT_TENANT_ID, Database } from '@berth/persistence';
import { ExecutorClient, SandboxHandle, SandboxManager, sandboxWorkingDir } from '@berth/sandbox';
import type { Principal } from '../common/tenant.decorator';

/** The default tenant's home sandbox (the embedded default's machine, as the OpenHands local server has one). */
export const DEFAULT_SANDBOX_ID = '00000000-0000-4000-8000-00000000000d';

/** Where a top-level workspace call goes, and how its paths read there. */
export interface WorkspaceTarget {
  sandboxId: string;
  handle: SandboxHandle;
  /** The caller's absolute path as the sandbox's executor knows it. */
  toSandboxPath(path: string): string;
}

const same = (path: string) => path;

/**
 * Routing of workspace calls (files, bash, git) that carry no `/sandboxes/{id}` prefix, as Agent
 * Canvas makes them. Every tenant has a home sandbox: `GET /api/file/home` names its root, and a
 * conversation whose working dir lies under that root works in it (one machine, as with the
 * OpenHands local server). A call whose path lies in a conversation's working dir goes to that
 * conversation's sandbox (a virtual working dir such as `/workspace/project` is translated to where
 * the sandbox keeps it); a path under the home root goes home; anything else is refused.
 */
@Injectable()
export class WorkspaceRoutingService {
  private readonly madeDirs = new Set<string>();

  constructor(
    private readonly sandboxes: SandboxManager,
    private readonly db: Database,
  ) {}

  /**
   * The tenant's running home sandbox, with its root. Its row is made on first use (or again after a
   * DELETE), not on every call: most calls find the executor already checked.
   */
  async home(tenantId: string): Promise<{ sandboxId: string; handle: SandboxHandle }> {
    const sandboxId = homeSandboxId(tenantId);
    try {
      return { sandboxId, handle: await this.handle(sandboxId) };
    } catch (err) {
      if (!(err instanceof NotFoundException)) throw err;
    }
    await this.db.prisma.sandbox.upsert({
      where: { id: sandboxId },
      create: { id: sandboxId, tenantId, driver: this.sandboxes.driverKind, status: 'starting' },
      update: {},
    });
    return { sandboxId, handle: await this.handle(sandboxId) };
  }

  /**
   * The home sandbox when an absolute path lies under its root (where Agent Canvas puts working
   * dirs), else null. Reads the stored handle: a home never started has handed out no such path.
   */
  async homeContaining(tenantId: string, path: string): Promise<string | null> {
    if (!isAbsolute(path)) return null;
    const row = await this.db.prisma.sandbox.findFirst({ where: { id: homeSandboxId(tenantId), tenantId } });
    const root = row ? this.sandboxes.handleOf(row)?.root : undefined;
    return root && inside(root, normalize(path)) ? (row?.id ?? null) : null;
  }

  /** Where a call with this path (or none: the home sandbox) goes. */
  async route(p: Principal, path: string | null): Promise<WorkspaceTarget> {
    if (p.sandboxId) return { sandboxId: p.sandboxId, handle: await this.handle(p.sandboxId), toSandboxPath: same };
    if (!path) return { ...(await this.home(p.tenantId)), toSandboxPath: same };
    if (!isAbsolute(path)) throw new BadRequestException({ detail: 'Path must be absolute' });
    const wanted = normalize(path);
    const owner = await this.conversationOwning(p.tenantId, wanted);
    if (owner) {
      const sandboxId = await this.sandboxes.sandboxIdFor({ id: owner.id, tenantId: p.tenantId, sandboxId: owner.sandbox_id });
      const handle = await this.handle(sandboxId);
      const real = sandboxWorkingDir(handle.root, owner.working_dir);
      await this.ensureWorkingDir(handle, real);
      return { sandboxId, handle, toSandboxPath: (p) => join(real, relative(owner.working_dir, normalize(p))) };
    }
    const home = await this.home(p.tenantId);
    if (inside(home.handle.root, wanted)) return { ...home, toSandboxPath: same };
    throw new BadRequestException({
      detail:
        `${path} lies in no conversation's working dir nor under the home (${home.handle.root}): ` +
        'call /sandboxes/{sandbox_id}/api/... for a sandbox of your own (POST /api/sandboxes)',
    });
  }

  /**
   * A conversation's working dir exists before the first call in it (OpenHands creates it with the
   * conversation; Berth's sandbox may not run yet then). Once per executor and directory.
   */
  private async ensureWorkingDir(handle: SandboxHandle, dir: string): Promise<void> {
    const key = `${handle.url} ${dir}`;
    if (this.madeDirs.has(key)) return;
    await new ExecutorClient(handle).createDirectory(dir, { timeoutMs: 10_000 });
    if (this.madeDirs.size > 10_000) this.madeDirs.clear();
    this.madeDirs.add(key);
  }

  /** The caller's conversation with the deepest working dir containing `path` (the newest on a tie). */
  private async conversationOwning(tenantId: string, path: string): Promise<{ id: string; sandbox_id: string | null; working_dir: string } | null> {
    const candidates: string[] = [];
    for (let dir = path; ; dir = dirname(dir)) {
      candidates.push(dir);
      if (dir === '/') break;
    }
    const rows = await this.db.prisma.$queryRaw<{ id: string; sandbox_id: string | null; working_dir: string }[]>`
      SELECT "id"::text AS "id", "sandbox_id"::text AS "sandbox_id", "workspace"->>'working_dir' AS "working_dir"
        FROM "conversations"
       WHERE "tenant_id" = ${tenantId}::uuid AND ("workspace"->>'working_dir') = ANY(${candidates}::text[])
       ORDER BY length("workspace"->>'working_dir') DESC, "updated_at" DESC
       LIMIT 1`;
    return rows[0] ?? null;
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
}

/** A stable id per tenant: the default tenant keeps the embedded default's well-known one. */
export function homeSandboxId(tenantId: string): string {
  if (tenantId === DEFAULT_TENANT_ID) return DEFAULT_SANDBOX_ID;
  const hex = createHash('sha256').update(`home:${tenantId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}
