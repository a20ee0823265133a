import { SecretVault } from '@berth/crypto';
import { ConversationRow, Database, Prisma } from '@berth/persistence';
import { ExecutorClient, ExecutorError, SandboxDriver, SandboxHandle } from '@berth/sandbox';
import { isAbsolute, join, normalize } from 'node:path';
import { ToolFailure, ToolRuntime } from './agent-runner';

type Json = Record<string, any>;

/** A tool call may run this long beyond its own timeout before the worker gives up on the executor. */
const CALL_MARGIN_MS = 10 * 60_000;

/**
 * The working directory inside a sandbox: a path already under the sandbox's root is kept; any
 * other (`/workspace/project`) is placed under the root, so nothing outside it is ever touched.
 */
export function sandboxWorkingDir(root: string, requested: string): string {
  const path = normalize(requested);
  if (isAbsolute(path) && (path === root || path.startsWith(`${root}/`))) return path;
  return join(root, path.replace(/^\/+/, ''));
}

/**
 * Runs sandbox tools for the agent loop: finds (or creates) the conversation's sandbox, makes sure
 * its executor runs (restarting a dead one), and calls it with the sandbox's token, which is stored
 * encrypted and never leaves the worker.
 */
export class SandboxToolRuntime extends ToolRuntime {
  private readonly starting = new Map<string, Promise<SandboxHandle>>();

  constructor(
    private readonly db: Database,
    private readonly driver: SandboxDriver,
    private readonly vault: SecretVault,
  ) {
    super();
  }

  async workingDir(conversation: ConversationRow): Promise<string> {
    const handle = await this.sandboxFor(conversation);
    return sandboxWorkingDir(handle.root, (conversation.workspace as Json).working_dir);
  }

  async execute(conversation: ConversationRow, tool: string, action: Json, signal: AbortSignal): Promise<Json> {
    const handle = await this.sandboxFor(conversation);
    const client = new ExecutorClient(handle);
    const timeoutMs = CALL_MARGIN_MS + (typeof action.timeout === 'number' ? action.timeout * 1000 : 0);
    try {
      const { observation } = await client.execute(
        { conversation_id: conversation.id, working_dir: sandboxWorkingDir(handle.root, (conversation.workspace as Json).working_dir), tool, action },
        { signal, timeoutMs },
      );
      return observation;
    } catch (err) {
      if (err instanceof ExecutorError && err.status !== null && err.status < 500) {
        throw new ToolFailure(typeof err.detail === 'string' ? err.detail : JSON.stringify(err.detail));
      }
      throw err;
    } finally {
      await this.db.prisma.sandbox.update({ where: { id: handle.id }, data: { lastActivityAt: new Date() } }).catch(() => undefined);
    }
  }

  /** One provisioning at a time per sandbox, in this process. */
  private sandboxFor(conversation: ConversationRow): Promise<SandboxHandle> {
    const key = conversation.sandboxId ?? `conversation:${conversation.id}`;
    let pending = this.starting.get(key);
    if (!pending) {
      pending = this.ensure(conversation).finally(() => this.starting.delete(key));
      this.starting.set(key, pending);
    }
    return pending;
  }

  private async ensure(conversation: ConversationRow): Promise<SandboxHandle> {
    let sandboxId = conversation.sandboxId;
    if (!sandboxId) {
      sandboxId = conversation.id;
      await this.db.prisma.$transaction([
        this.db.prisma.sandbox.upsert({
          where: { id: sandboxId },
          create: { id: sandboxId, tenantId: conversation.tenantId, driver: this.driver.kind, status: 'starting' },
          update: {},
        }),
        this.db.prisma.conversation.update({ where: { id: conversation.id }, data: { sandboxId } }),
      ]);
      conversation.sandboxId = sandboxId;
    }
    const row = await this.db.prisma.sandbox.findUniqueOrThrow({ where: { id: sandboxId } });
    const stored = row.handle as Json;
    let handle: SandboxHandle;
    try {
      handle = stored.token
        ? await this.driver.ensureRunning({ ...(stored as SandboxHandle), token: this.vault.decrypt(stored.token) })
        : await this.driver.provision({ id: sandboxId, env: row.env as Record<string, string> });
    } catch (err) {
      await this.db.prisma.sandbox.update({ where: { id: sandboxId }, data: { status: 'error', updatedAt: new Date() } });
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
    return handle;
  }
}
