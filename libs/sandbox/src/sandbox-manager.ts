import { SecretVault } from '@berth/crypto';
import { ConversationRepository, Prisma, SandboxRepository, tenantScope } from '@berth/persistence';
import type { SandboxKind, SandboxRow, TenantScope } from '@berth/persistence';
import { SandboxDriver, SandboxError, SandboxHandle, SandboxSpec } from './sandbox-driver';

type Json = Record<string, unknown>;

export type SandboxNetworkName = NonNullable<SandboxSpec['network']>;

export interface NewSandbox {
  env?: Record<string, string>;
  /** Default: the tenant's allowance. */
  network?: SandboxNetworkName;
  idleTimeoutSeconds?: number;
  ttlSeconds?: number | null;
}

/** What the tenant's quotas say of its sandboxes' network (read in one go: a start needs both). */
export interface NetworkPolicy {
  /** the most network its sandboxes may have, and what they get by default */
  allowed: SandboxNetworkName;
  /** ranges its `egress` sandboxes may reach beyond the outside */
  egressCidrs: string[];
}

/** A sandbox row just made, with the policy its creation read: its first start needs neither read again. */
export interface CreatedSandbox {
  id: string;
  row: SandboxRow;
  policy: NetworkPolicy;
}

/** What the caller of a start has just read or written of the sandbox (none of it is read again). */
export interface KnownSandbox {
  /** the sandbox was just made by `make` */
  created?: CreatedSandbox;
  /** its state version, read by this request (the gateway's guard under `/sandboxes/{id}`) */
  stateVersion?: number;
}

/** The tenant has no such sandbox (another tenant's included), or it was deleted meanwhile. */
export class SandboxNotFound extends Error {
  constructor(readonly sandboxId: string) {
    super(`Sandbox not found: ${sandboxId}`);
  }
}

/** The sandbox asks for more network than its tenant is allowed (at its creation, or at a start after the allowance was lowered). */
export class SandboxNetworkRefused extends Error {
  constructor(
    readonly asked: SandboxNetworkName,
    readonly allowed: SandboxNetworkName,
  ) {
    super(`Network ${asked} is not allowed for this tenant's sandboxes: its allowance is ${allowed}`);
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
 *
 * Each operation writes the desired state first, then acts through the driver, then records what
 * it observed — both by compare-and-set (`SandboxRepository.changeState`), the observed state only
 * while the desired one is still what it acted for (a later pause or delete wins). What a crash
 * leaves half done, `SandboxReconciler` finishes.
 */
export class SandboxManager {
  /** Starts in progress, by tenant and sandbox. */
  private readonly starting = new Map<string, Promise<{ handle: SandboxHandle; row: SandboxRow }>>();
  /** Handles checked running recently: a workspace poll every 100 ms must not re-check each time. */
  private readonly verified = new Map<string, { tenantId: string; handle: SandboxHandle; at: number; stateVersion: number }>();
  /** When each conversation's events last counted as its sandbox's activity. */
  private readonly activeConversations = new Map<string, number>();
  /** Sandboxes whose runs this process handed to another worker at stop: their executors outlive it. */
  readonly handedOver = new Set<string>();

  constructor(
    private readonly rows: SandboxRepository,
    private readonly conversations: ConversationRepository,
    private readonly driver: SandboxDriver,
    private readonly vault: SecretVault,
    /** The server's default network (BERTH_SANDBOX_NETWORK): a tenant's allowance when its quotas name none. */
    private readonly defaultNetwork: SandboxNetworkName = 'none',
  ) {}

  get driverKind(): string {
    return this.driver.kind;
  }

  /**
   * A new sandbox row (not started yet; `ensureRunning` starts it) with the network asked for, at
   * most the tenant's allowance (and that by default). Its id is random, or the one the driver has
   * an executor waiting for (the warm pool).
   */
  async create(scope: TenantScope, spec: NewSandbox = {}, kind: SandboxKind = 'standalone'): Promise<SandboxRow> {
    return (await this.make(scope, spec, kind)).row;
  }

  /** `create`, keeping what it read and wrote for the start that follows (`ensureRunning`'s `created`). */
  async make(scope: TenantScope, spec: NewSandbox = {}, kind: SandboxKind = 'standalone'): Promise<CreatedSandbox> {
    const policy = await this.policy(scope);
    const network = spec.network ?? policy.allowed;
    if (!networkWithin(network, policy.allowed)) throw new SandboxNetworkRefused(network, policy.allowed);
    // Variables often carry credentials: their values are stored encrypted, as secrets are.
    const env = spec.env && Object.fromEntries(Object.entries(spec.env).map(([name, value]) => [name, { sealed: this.vault.encrypt(value) }]));
    const row = await this.rows.create(scope, { driver: this.driver.kind, kind, ...spec, env, network, id: this.driver.reserveId(network) ?? undefined });
    return { id: row.id, row, policy };
  }

  /** The tenant's home sandbox row, made on first use (with the tenant's network). */
  async home(scope: TenantScope): Promise<SandboxRow> {
    const existing = await this.rows.findHome(scope);
    if (existing) return existing;
    const network = (await this.policy(scope)).allowed;
    return this.rows.findOrCreateHome(scope, () => ({ driver: this.driver.kind, network, id: this.driver.reserveId(network) ?? undefined }));
  }

  /** The network the tenant's sandboxes may have at most (and have by default), and their egress allowlist. */
  async policy(scope: TenantScope): Promise<NetworkPolicy> {
    const { network, egressCidrs } = await this.rows.networkPolicy(scope);
    return { allowed: network === 'none' || network === 'egress' ? network : this.defaultNetwork, egressCidrs };
  }

  /** A sandbox's network: as made, or (made before networks were per sandbox) the server default it started with. */
  networkOf(row: SandboxRow): SandboxNetworkName {
    return row.network === 'none' || row.network === 'egress' ? row.network : this.defaultNetwork;
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
  async ensureRunning(scope: TenantScope, sandboxId: string, known: KnownSandbox = {}): Promise<SandboxHandle> {
    return (await this.running(scope, sandboxId, known)).handle;
  }

  /** `ensureRunning`, answering the sandbox's row as it is then (read only when no start wrote it here). */
  async ensureRunningRow(scope: TenantScope, sandboxId: string, known: KnownSandbox = {}): Promise<SandboxRow> {
    const { row } = await this.running(scope, sandboxId, known);
    const current = row ?? (await this.rows.find(scope, sandboxId));
    if (!current) throw new SandboxNotFound(sandboxId);
    return current;
  }

  private async running(scope: TenantScope, sandboxId: string, { created, stateVersion }: KnownSandbox): Promise<{ handle: SandboxHandle; row: SandboxRow | null }> {
    const verified = this.verified.get(sandboxId);
    // Trusted only while no replica changed the sandbox's state since (a pause elsewhere bumps the version).
    if (
      verified &&
      verified.tenantId === scope.tenantId &&
      Date.now() - verified.at < VERIFIED_FOR_MS &&
      (stateVersion ?? (await this.rows.stateVersionOf(scope, sandboxId))) === verified.stateVersion
    ) {
      return { handle: verified.handle, row: null };
    }
    const key = `${scope.tenantId}/${sandboxId}`;
    let pending = this.starting.get(key);
    if (!pending) {
      pending = this.start(tenantScope(scope.tenantId), sandboxId, created?.id === sandboxId && created.row.tenantId === scope.tenantId ? created : undefined).finally(() => this.starting.delete(key));
      this.starting.set(key, pending);
    }
    return pending;
  }

  private async start(scope: TenantScope, sandboxId: string, created?: CreatedSandbox): Promise<{ handle: SandboxHandle; row: SandboxRow }> {
    const [found, policy] = created ? [created.row, created.policy] : await Promise.all([this.rows.find(scope, sandboxId), this.policy(scope)]);
    if (!found) throw new SandboxNotFound(sandboxId);
    const { allowed } = policy;
    const network = this.networkOf(found);
    // An allowance lowered since the sandbox was made: it does not start again with more.
    if (!networkWithin(network, allowed)) throw new SandboxNetworkRefused(network, allowed);
    const wanted = await this.rows.changeState(
      scope,
      sandboxId,
      (row) => {
        if (row.desiredState === 'destroyed') return null;
        if (row.desiredState === 'running' && (row.status === 'running' || row.status === 'starting')) return null;
        return { desiredState: 'running', ...(row.status === 'running' ? {} : { status: 'starting', statusReason: null }) };
      },
      found,
    );
    const row = wanted.row;
    if (!row || row.desiredState === 'destroyed') throw new SandboxNotFound(sandboxId);
    // A handle this driver did not make (written with another data dir) names nothing it may touch.
    const known = this.handleOf(row);
    const stored = known && this.driver.owns(known) ? known : null;
    let handle: SandboxHandle;
    try {
      handle = stored ? await this.driver.ensureRunning(stored) : await this.driver.provision({ id: sandboxId, env: this.envOf(row), network, tenantId: scope.tenantId, egressCidrs: policy.egressCidrs });
    } catch (err) {
      this.verified.delete(sandboxId);
      await this.rows.changeState(scope, sandboxId, (current) => (current.desiredState === 'running' ? { status: 'error', statusReason: reasonOf(err) } : null));
      throw err;
    }
    const sealed = { ...handle, token: this.vault.encrypt(handle.token) } as unknown as Prisma.InputJsonValue;
    // From the row written before the start: a change since (a pause, a delete) fails the compare-and-set, which reads it again.
    const observed = await this.rows.changeState(
      scope,
      sandboxId,
      (current) => (current.desiredState === 'running' ? { status: 'running', statusReason: null, url: handle.url, handle: sealed, active: true } : null),
      row,
    );
    if (!observed.applied) {
      // Deleted or paused while it started: the later wish wins, nothing keeps running against it.
      const gone = !observed.row || observed.row.desiredState === 'destroyed';
      await (gone ? this.driver.destroy(handle) : this.driver.stop(handle)).catch(() => undefined);
      if (gone) throw new SandboxNotFound(sandboxId);
      throw new SandboxError(`sandbox ${sandboxId} was stopped while it started`);
    }
    const running = observed.row as SandboxRow;
    this.verified.set(sandboxId, { tenantId: scope.tenantId, handle, at: Date.now(), stateVersion: running.stateVersion });
    return { handle, row: running };
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
    const wanted = await this.rows.changeState(scope, row.id, (current) => (current.desiredState === 'running' ? { desiredState: 'stopped' } : null), row);
    // Being deleted: the delete stops it.
    if (!wanted.row || wanted.row.desiredState === 'destroyed') return;
    await this.stopAndRecord(scope, wanted.row, status);
  }

  /**
   * The reconciler's stop of a sandbox wanted stopped that still runs — only while its row is as the
   * reconciler read it (a resume since then wins). False when it was not.
   */
  async enforceStopped(scope: TenantScope, row: SandboxRow): Promise<boolean> {
    const current = await this.rows.find(scope, row.id);
    if (!current || current.stateVersion !== row.stateVersion || current.desiredState !== 'stopped') return false;
    await this.stopAndRecord(scope, current, current.status === 'paused' ? 'paused' : 'stopped');
    return true;
  }

  private async stopAndRecord(scope: TenantScope, row: SandboxRow, status: 'paused' | 'stopped'): Promise<void> {
    this.verified.delete(row.id);
    const handle = this.handleOf(row);
    if (handle && this.driver.owns(handle)) await this.driver.stop(handle);
    await this.rows.changeState(scope, row.id, (current) =>
      current.desiredState === 'stopped' && current.status !== status ? { status, statusReason: null } : null,
    );
  }

  /** Removes the executor, the files and the row (a delete that fails half way is finished by the reconciler). */
  async destroy(scope: TenantScope, row: SandboxRow): Promise<void> {
    if (row.tenantId !== scope.tenantId) throw new SandboxNotFound(row.id);
    this.verified.delete(row.id);
    const wanted = await this.rows.changeState(scope, row.id, (current) => (current.desiredState === 'destroyed' ? null : { desiredState: 'destroyed' }), row);
    if (!wanted.row) return;
    const handle = this.handleOf(wanted.row);
    // No handle of this driver: whatever a start that failed half way left (a pod, a Secret) goes by id.
    await (handle && this.driver.owns(handle) ? this.driver.destroy(handle) : this.driver.removeOrphan(row.id));
    await this.rows.remove(scope, row.id);
  }

  get copiesWorkspaces(): boolean {
    return this.driver.copiesWorkspaces;
  }

  /** Copies a working dir from one of the tenant's sandboxes into another of its (a fork's, not started yet). */
  async copyWorkspace(scope: TenantScope, fromId: string, toId: string, workingDir: string): Promise<void> {
    const [from, to] = await Promise.all([this.rows.find(scope, fromId), this.rows.find(scope, toId)]);
    if (!from) throw new SandboxNotFound(fromId);
    if (!to) throw new SandboxNotFound(toId);
    await this.driver.copyWorkspace(from.id, to.id, workingDir);
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

/** What a failed start records as its status reason: the driver's reason word (ImagePullBackOff…), or the first line of the message. */
export function reasonOf(err: unknown): string {
  if (err instanceof SandboxError && err.reason) return err.reason;
  return ((err as Error).message ?? String(err)).split('\n')[0].slice(0, 500);
}

function networkWithin(network: SandboxNetworkName, allowed: SandboxNetworkName): boolean {
  return network === 'none' || allowed === 'egress';
}
