import { SandboxActivity, utcTimestamp } from '@berth/contracts/executor';

/**
 * What the gateway's idle clock reads (`GET /api/activity`): the last file, bash, git or tool call
 * (or command output), and what is still running. While anything runs, "now" is the last activity.
 */
export class Activity {
  private last = Date.now();
  /** Work in flight that is neither a command nor a terminal (an MCP tool call). */
  private held = 0;

  touch(): void {
    this.last = Date.now();
  }

  /** Counts as activity until the promise settles (then touches). */
  async during<T>(work: Promise<T>): Promise<T> {
    this.held++;
    try {
      return await work;
    } finally {
      this.held--;
      this.touch();
    }
  }

  snapshot(runningCommands: number, runningTerminals: number): SandboxActivity {
    const at = runningCommands + runningTerminals + this.held > 0 ? Date.now() : this.last;
    return { last_activity_at: utcTimestamp(new Date(at)), running_commands: runningCommands, running_terminals: runningTerminals };
  }
}
