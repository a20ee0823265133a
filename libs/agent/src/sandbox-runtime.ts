import type { ProjectSkillFile } from '@berth/contracts';
import { tenantScope } from '@berth/persistence';
import type { ConversationRow } from '@berth/persistence';
import { ExecutorClient, ExecutorError, SandboxHandle, SandboxManager, sandboxRoot, sandboxWorkingDir } from '@berth/sandbox';
import { ConversationPlace, ToolFailure, ToolRuntime } from './agent-runner';

type Json = Record<string, any>;

/** A tool call may run this long beyond its own timeout before the worker gives up on the executor. */
const CALL_MARGIN_MS = 10 * 60_000;

/**
 * Runs sandbox tools for the agent loop: finds (or creates) the conversation's sandbox, makes sure
 * its executor runs, and calls it with the sandbox's token, which never leaves the server.
 */
export class SandboxToolRuntime extends ToolRuntime {
  constructor(private readonly sandboxes: SandboxManager) {
    super();
  }

  /** The conversation's own tenant: its sandbox is one of that tenant's, never another's. */
  private async handleFor(conversation: ConversationPlace): Promise<SandboxHandle> {
    const owner = tenantScope(conversation.tenantId);
    return this.sandboxes.ensureRunning(owner, await this.sandboxes.sandboxIdFor(owner, conversation));
  }

  async workingDir(conversation: ConversationPlace): Promise<string> {
    const handle = await this.handleFor(conversation);
    return sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir);
  }

  async projectSkillFiles(conversation: ConversationPlace): Promise<ProjectSkillFile[]> {
    const handle = await this.handleFor(conversation);
    const workingDir = sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir);
    return (await new ExecutorClient(handle).projectSkillFiles(workingDir)).files;
  }

  async execute(conversation: ConversationRow, tool: string, action: Json, signal: AbortSignal, env?: Record<string, string>): Promise<Json> {
    const handle = await this.handleFor(conversation);
    const client = new ExecutorClient(handle);
    const timeoutMs = CALL_MARGIN_MS + (typeof action.timeout === 'number' ? action.timeout * 1000 : 0);
    try {
      const { observation } = await client.execute(
        {
          conversation_id: conversation.id,
          working_dir: sandboxWorkingDir(sandboxRoot(handle), (conversation.workspace as Json).working_dir),
          tool,
          action,
          ...(env && Object.keys(env).length ? { env } : {}),
        },
        { signal, timeoutMs },
      );
      return observation;
    } catch (err) {
      if (err instanceof ExecutorError && err.status !== null && err.status < 500) {
        throw new ToolFailure(typeof err.detail === 'string' ? err.detail : JSON.stringify(err.detail));
      }
      throw err;
    } finally {
      await this.sandboxes.touch(tenantScope(conversation.tenantId), handle.id).catch(() => undefined);
    }
  }
}
