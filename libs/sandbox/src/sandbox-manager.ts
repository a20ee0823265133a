import { SecretVault } from '@berth/crypto';
import { Database, Prisma } from '@berth/persistence';
import type { SandboxRow } from '@berth/persistence';
import { randomUUID } from 'node:crypto';
import { SandboxDriver, SandboxHandle } from './sandbox-driver';

type Json = Record<string, unknown>;

export interface NewSandbox {
  id?: string;
  env?: Record<string, string>;
  idleTimeoutSeconds?: number;
  ttlSeconds?: number | null;
}

/**
 * Sandboxes as rows and executors together: creates, starts (restarting a dead executor), stops and
 * removes them through the driver, and keeps `sandboxes` in step — status, address, activity, and
 * the handle with its token encrypted (the token never leaves the server).
 */
/** A running executor, once checked, is trusted this long before it is checked again. */
const VERIFIED_FOR_MS = 5000;
/** Events count as activity at this resolution (the idle timeout is minutes). */
const ACTIVITY_WRITE_EVERY_MS = 10_000;

export class SandboxManager {
  private readonly starting = new Map<string, Promise<SandboxHandle>>();
  /** Handles checked running recently: a workspace poll every 100 ms must not re-check each time. */
  private readonly verified = new Map<string, { handle: SandboxHandle; at: number }>();
  /** When each conversation's events last counted as its sandbox's activity. */
  private readonly activeConversations = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly driver: SandboxDriver,
    private readonly vault: SecretVault,
  ) {}

  get driverKind(): string {
    return this.driver.kind;
  }

  /** A new sandbox row (not started yet; `ensureRunning` starts it). */
  async create(tenantId: string, spec: NewSandbox = {}): Promise<SandboxRow> {
    return this.db.prisma.sandbox.create({
      data: {
        id: spec.id ?? randomUUID(),
        tenantId,
        driver: this.driver.kind,
        status: 'starting',
        env: (spec.env ?? {}) as Prisma.InputJsonValue,
        ...(spec.idleTimeoutSeconds !== undefined ? { idleTimeoutSeconds: spec.idleTimeoutSeconds } : {}),
        ttlSeconds: spec.ttlSeconds ?? null,
      },
    });
  }

  /** A conversation's sandbox, created (with the conversation's id) the first time it is needed. */
  async sandboxIdFor(conversation: { id: string; tenantId: string; sandboxId: string | null }): Promise<string> {
    if (conversation.sandboxId) return conversation.sandboxId;
    const id = conversation.id;
    await this.db.prisma.$transaction([
      this.db.prisma.sandbox.upsert({
        where: { id },
        create: { id, tenantId: conversation.tenantId, driver: this.driver.kind, status: 'starting' },
        update: {},
      }),
      this.db.prisma.conversation.update({ where: { id: conversation.id }, data: { sandboxId: id } }),
    ]);
    conversation.sandboxId = id;
    return id;
  }

  /** A running executor for the sandbox: started, restarted or reused; one start at a time per sandbox. */
  ensureRunning(sandboxId: string): Promise<SandboxHandle> {
    const known = this.verified.get(sandboxId);
    if (known && Date.now() - known.at < VERIFIED_FOR_MS) return Promise.resolve(known.handle);
    let pending = this.starting.get(sandboxId);
    if (!pending) {
      pending = this.start(sandboxId).finally(() => this.starting.delete(sandboxId));
      this.starting.set(sandboxId, pending);
    }
    return pending;
  }

  private async start(sandboxId: string): Promise<SandboxHandle> {
    const row = await this.db.prisma.sandbox.findUniqueOrThrow({ where: { id: sandboxId } });
    const stored = this.handleOf(row);
    let handle: SandboxHandle;
    try {
      handle = stored ? await this.driver.ensureRunning(stored) : await this.driver.provision({ id: sandboxId, env: row.env as Record<string, string> });
    } catch (err) {
      this.verified.delete(sandboxId);
      await this.setStatus(sandboxId, 'error');
      throw err;
    }
    await this.db.prisma.sandbox.update({
      where: { id: sandboxId },
      data: {
        status: 'running',
        url: handle.url,
        handle: { ...handle, token: this.vault.encrypt(handle.token) } as unknown as Prisma.InputJsonValue,
        updatedAt: new Date(),
        lastActivityAt: new Date(),
      },
    });
    this.verified.set(sandboxId, { handle, at: Date.now() });
    return handle;
  }

  /** The stored handle with its token decrypted, or null before the first start. */
  handleOf(row: SandboxRow): SandboxHandle | null {
    const stored = row.handle as Json;
    if (typeof stored.token !== 'string') return null;
    return { ...(stored as unknown as SandboxHandle), token: this.vault.decrypt(stored.token) };
  }

  /** Stops the executor; the files stay. `paused` by a user, `stopped` by the idle clock. */
  async pause(row: SandboxRow, status: 'paused' | 'stopped' = 'paused'): Promise<void> {
    this.verified.delete(row.id);
    const handle = this.handleOf(row);
    if (handle) await this.driver.stop(handle);
    await this.setStatus(row.id, status);
  }

  /** Removes the executor, the files and the row. */
  async destroy(row: SandboxRow): Promise<void> {
    this.verified.delete(row.id);
    const handle = this.handleOf(row);
    if (handle) await this.driver.destroy(handle);
    await this.db.prisma.sandbox.deleteMany({ where: { id: row.id } });
  }

  async touch(sandboxId: string): Promise<void> {
    await this.db.prisma.sandbox.updateMany({ where: { id: sandboxId }, data: { lastActivityAt: new Date() } });
  }

  /**
   * An event of a conversation is activity of its sandbox (a message while no run goes on, a state
   * change): at most one write per conversation every few seconds.
   */
  async conversationActive(conversationId: string): Promise<void> {
    const now = Date.now();
    if (now - (this.activeConversations.get(conversationId) ?? 0) < ACTIVITY_WRITE_EVERY_MS) return;
    if (this.activeConversations.size >= 10_000) this.activeConversations.clear();
    this.activeConversations.set(conversationId, now);
    await this.db.prisma.$executeRaw`
      UPDATE "sandboxes" SET "last_activity_at" = now()
       WHERE "id" = (SELECT "sandbox_id" FROM "conversations" WHERE "id" = ${conversationId}::uuid)`;
  }

  private async setStatus(sandboxId: string, status: string): Promise<void> {
    await this.db.prisma.sandbox.updateMany({ where: { id: sandboxId }, data: { status, updatedAt: new Date() } });
  }
}
