import { SecretVault } from '@berth/crypto';
import { ConversationRepository, Prisma, SandboxRepository, tenantScope } from '@berth/persistence';
import type { SandboxKind, SandboxRow, TenantScope } from '@berth/persistence';
import { SandboxDriver, SandboxHandle } from './sandbox-driver';

type Json = Record<string, unknown>;

export interface NewSandbox {
  env?: Record<string, string>;
  idleTimeoutSeconds?: number;
  ttlSeconds?: number | null;
}

/** The tenant has no such sandbox (another tenant's included), or it was deleted meanwhile. */
export class SandboxNotFound extends Error {
  constructor(readonly sandboxId: string) {
    super(`Sandbox not found: ${sandboxId}`);
  }
}

/** A running executor, once checked, is trusted this long before it is checked again. */
const VERIFIED_FOR_MS = 5000;
/** Events count as activity at this resolution (the idle timeout is minutes). */
const ACTIVITY_WRITE_EVERY_MS = 10_000;

/**
 * Sandboxes as rows and executors together: creates, starts (restarting a dead executor), stops and
 * removes them through the driver, and keeps `sandboxes` in step — status, address, activity, and
 * the handle with its token encrypted (the token never leaves the server). Every call names the
 * tenant: another tenant's sandbox is not found.
 */
export class SandboxManager {
  /** Starts in progress, by tenant and sandbox. */
  private readonly starting = new Map<string, Promise<SandboxHandle>>();
  /** Handles checked running recently: a workspace poll every 100 ms must not re-check each time. */
  private readonly verified = new Map<string, { tenantId: string; handle: SandboxHandle; at: number }>();
  /** When each conversation's events last counted as its sandbox's activity. */
  private readonly activeConversations = new Map<string, number>();

  constructor(
    private readonly rows: SandboxRepository,
    private readonly conversations: ConversationRepository,
    private readonly driver: SandboxDriver,
    private readonly vault: SecretVault,
  ) {}

  get driverKind(): string {
    return this.driver.kind;
  }

  /** A new sandbox row with a random id (not started yet; `ensureRunning` starts it). */
  create(scope: TenantScope, spec: NewSandbox = {}, kind: SandboxKind = 'standalone'): Promise<SandboxRow> {
    // Variables often carry credentials: their values are stored encrypted, as secrets are.
    const env = spec.env && Object.fromEntries(Object.entries(spec.env).map(([name, value]) => [name, { sealed: this.vault.encrypt(value) }]));
    return this.rows.create(scope, { driver: this.driver.kind, kind, ...spec, env });
  }

  /** The tenant's home sandbox row, made on first use. */
  home(scope: TenantScope): Promise<SandboxRow> {
    return this.rows.findOrCreateHome(scope, this.driver.kind);
  }

  /** The tenant's home sandbox row, or null before its first use. */
  findHome(scope: TenantScope): Promise<SandboxRow | null> {
    return this.rows.findHome(scope);
  }

  /**
   * A conversation's sandbox, made the first time it is needed: a new row of the tenant with a
   * fresh id, attached only if the conversation still has none (a concurrent first call wins).
   */
  async sandboxIdFor(scope: TenantScope, conversation: { id: string; sandboxId: string | null }): Promise<string> {
    if (conversation.sandboxId) return conversation.sandboxId;
    const owner = tenantScope(scope.tenantId);
    const made = await this.create(owner, {}, 'conversation');
    if (await this.conversations.attachSandbox(owner, conversation.id, made.id)) {
      conversation.sandboxId = made.id;
      return made.id;
    }
    await this.rows.remove(owner, made.id);
    const current = await this.conversations.find(owner, conversation.id);
    if (!current?.sandboxId) throw new SandboxNotFound(made.id);
    conversation.sandboxId = current.sandboxId;
    return current.sandboxId;
  }

  /** A running executor for the tenant's sandbox: started, restarted or reused; one start at a time per sandbox. */
  ensureRunning(scope: TenantScope, sandboxId: string): Promise<SandboxHandle> {
    const known = this.verified.get(sandboxId);
    if (known && known.tenantId === scope.tenantId && Date.now() - known.at < VERIFIED_FOR_MS) return Promise.resolve(known.handle);
    const key = `${scope.tenantId}/${sandboxId}`;
    let pending = this.starting.get(key);
    if (!pending) {
      pending = this.start(tenantScope(scope.tenantId), sandboxId).finally(() => this.starting.delete(key));
      this.starting.set(key, pending);
    }
    return pending;
  }

  private async start(scope: TenantScope, sandboxId: string): Promise<SandboxHandle> {
    const row = await this.rows.find(scope, sandboxId);
    if (!row) throw new SandboxNotFound(sandboxId);
    const stored = this.handleOf(row);
    let handle: SandboxHandle;
    try {
      handle = stored ? await this.driver.ensureRunning(stored) : await this.driver.provision({ id: sandboxId, env: this.envOf(row) });
    } catch (err) {
      this.verified.delete(sandboxId);
      await this.rows.setStatus(scope, sandboxId, 'error');
      throw err;
    }
    const sealed = { ...handle, token: this.vault.encrypt(handle.token) } as unknown as Prisma.InputJsonValue;
    if (!(await this.rows.markRunning(scope, sandboxId, handle.url, sealed))) {
      // Deleted while it started: nothing may keep running for a row that is gone.
      await this.driver.destroy(handle).catch(() => undefined);
      throw new SandboxNotFound(sandboxId);
    }
    this.verified.set(sandboxId, { tenantId: scope.tenantId, handle, at: Date.now() });
    return handle;
  }

  /** The sandbox's variables, decrypted (a row written before they were sealed holds them in clear). */
  private envOf(row: SandboxRow): Record<string, string> {
    const stored = row.env as Record<string, string | { sealed: string }>;
    return Object.fromEntries(Object.entries(stored).map(([name, value]) => [name, typeof value === 'string' ? value : this.vault.decrypt(value.sealed)]));
  }

  /** The stored handle with its token decrypted, or null before the first start. */
  handleOf(row: SandboxRow): SandboxHandle | null {
    const stored = row.handle as Json;
    if (typeof stored.token !== 'string') return null;
    return { ...(stored as unknown as SandboxHandle), token: this.vault.decrypt(stored.token) };
  }

  /** Stops the executor; the files stay. `paused` by a user, `stopped` by the idle clock. */
  async pause(scope: TenantScope, row: SandboxRow, status: 'paused' | 'stopped' = 'paused'): Promise<void> {
    if (row.tenantId !== scope.tenantId) throw new SandboxNotFound(row.id);
    this.verified.delete(row.id);
    const handle = this.handleOf(row);
    if (handle) await this.driver.stop(handle);
    await this.rows.setStatus(scope, row.id, status);
  }

  /** Removes the executor, the files and the row. */
  async destroy(scope: TenantScope, row: SandboxRow): Promise<void> {
    if (row.tenantId !== scope.tenantId) throw new SandboxNotFound(row.id);
    this.verified.delete(row.id);
    const handle = this.handleOf(row);
    if (handle) await this.driver.destroy(handle);
    await this.rows.remove(scope, row.id);
  }

  touch(scope: TenantScope, sandboxId: string): Promise<void> {
    return this.rows.touch(scope, sandboxId);
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
    await this.rows.touchOfConversation(conversationId);
  }
}
