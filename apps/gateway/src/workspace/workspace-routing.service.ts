import { BadRequestException, ForbiddenException, Injectable, NotFoundException } from '@nestjs/common';
import { dirname, isAbsolute, join, normalize, relative } from 'node:path';
import { ConversationRepository } from '@berth/persistence';
import type { TenantScope } from '@berth/persistence';
import { ExecutorClient, SandboxHandle, SandboxManager, SandboxNetworkRefused, SandboxNotFound, sandboxRoot, sandboxWorkingDir } from '@berth/sandbox';
import type { Principal } from '../common/tenant.decorator';
import { conversationNotFound } from '../conversations/conversation-errors';

/** Where a top-level workspace call goes, and how its paths read there. */
export interface WorkspaceTarget {
  sandboxId: string;
  handle: SandboxHandle;
  /** The caller's absolute path as the sandbox's executor knows it. */
  toSandboxPath(path: string): string;
}

/** A conversation's workspace: its sandbox, and its working dir as the caller names it. */
export interface ConversationTarget extends WorkspaceTarget {
  workingDir: string;
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
    private readonly conversations: ConversationRepository,
  ) {}

  /**
   * The tenant's running home sandbox, with its root. Its row (a random id, found by tenant and
   * kind) is made on first use, or again after a DELETE.
   */
  async home(scope: TenantScope): Promise<{ sandboxId: string; handle: SandboxHandle }> {
    for (let attempt = 0; ; attempt++) {
      const sandboxId = (await this.sandboxes.home(scope)).id;
      try {
        return { sandboxId, handle: await this.handle(scope, sandboxId) };
      } catch (err) {
        // Deleted between finding and starting it: the next round makes a new one.
        if (!(err instanceof NotFoundException) || attempt > 0) throw err;
      }
    }
  }

  /**
   * The home sandbox when an absolute path lies under its root (where Agent Canvas puts working
   * dirs), else null. Reads the stored handle: a home never started has handed out no such path.
   */
  async homeContaining(scope: TenantScope, path: string): Promise<string | null> {
    if (!isAbsolute(path)) return null;
    const row = await this.sandboxes.findHome(scope);
    const handle = row ? this.sandboxes.handleOf(row) : null;
    const root = handle ? sandboxRoot(handle) : undefined;
    return root && inside(root, normalize(path)) ? (row?.id ?? null) : null;
  }

  /** Where a call with this path (or none: the home sandbox) goes. */
  async route(p: Principal, path: string | null): Promise<WorkspaceTarget> {
    if (p.sandboxId) {
      // Under /sandboxes/{id}: the sandbox's own paths as they are, and the (virtual) working dir of
      // one of its conversations translated, as the SDK's Workspace(host=…/sandboxes/{id}) sends it.
      const handle = await this.handle(p, p.sandboxId, p.sandboxStateVersion);
      const owner = path && isAbsolute(path) && !inside(sandboxRoot(handle), normalize(path)) ? await this.conversationOwning(p, normalize(path)) : null;
      return owner ? this.inConversation(p, owner) : { sandboxId: p.sandboxId, handle, toSandboxPath: same };
    }
    if (!path) return { ...(await this.home(p)), toSandboxPath: same };
    if (!isAbsolute(path)) throw new BadRequestException({ detail: 'Path must be absolute' });
    const wanted = normalize(path);
    const owner = await this.conversationOwning(p, wanted);
    if (owner) return this.inConversation(p, owner);
    const home = await this.home(p);
    if (inside(sandboxRoot(home.handle), wanted)) return { ...home, toSandboxPath: same };
    throw new BadRequestException({
      detail:
        `${path} lies in no conversation's working dir nor under the home (${sandboxRoot(home.handle)}): ` +
        'call /sandboxes/{sandbox_id}/api/... for a sandbox of your own (POST /api/sandboxes)',
    });
  }

  /** The caller's conversation `id` and its working dir; 404 for an id that is not one of the caller's. */
  async conversation(p: Principal, id: string): Promise<{ id: string; sandboxId: string | null; workingDir: string }> {
    const row = await this.conversations.find(p, id);
    const workingDir = (row?.workspace as { working_dir?: unknown } | null)?.working_dir;
    if (!row || typeof workingDir !== 'string') throw conversationNotFound(id);
    return { id: row.id, sandboxId: row.sandboxId, workingDir: normalize(workingDir) };
  }

  /** A conversation's sandbox (started when needed, its working dir made), its (virtual) working dir translated to where the sandbox keeps it. */
  async inConversation(p: Principal, owner: { id: string; sandboxId: string | null; workingDir: string }): Promise<ConversationTarget> {
    const sandboxId = await this.sandboxes.sandboxIdFor(p, owner);
    const handle = await this.handle(p, sandboxId);
    const real = sandboxWorkingDir(sandboxRoot(handle), owner.workingDir);
    await this.ensureWorkingDir(handle, real);
    return { sandboxId, handle, workingDir: normalize(owner.workingDir), toSandboxPath: (path) => join(real, relative(owner.workingDir, normalize(path))) };
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
  private conversationOwning(scope: TenantScope, path: string) {
    const candidates: string[] = [];
    for (let dir = path; ; dir = dirname(dir)) {
      candidates.push(dir);
      if (dir === '/') break;
    }
    return this.conversations.withWorkingDirIn(scope, candidates);
  }

  /**
   * The executor of the caller's sandbox, starting it when needed (404 for another tenant's, or one
   * gone meanwhile). `stateVersion`: the sandbox's, as this request has just read it.
   */
  async handle(scope: TenantScope, sandboxId: string, stateVersion?: number): Promise<SandboxHandle> {
    try {
      return await this.sandboxes.ensureRunning(scope, sandboxId, { stateVersion });
    } catch (err) {
      if (err instanceof SandboxNotFound) throw new NotFoundException({ detail: `Sandbox not found: ${sandboxId}` });
      if (err instanceof SandboxNetworkRefused) throw new ForbiddenException({ detail: err.message });
      throw err;
    }
  }
}

export function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}
