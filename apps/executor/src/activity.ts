import { SandboxActivity, utcTimestamp } from '@berth/contracts';

/**
 * What the gateway's idle clock reads (`GET /api/activity`): the last file, bash, git or tool call
 * (or command output), and what is still running. While anything runs, "now" is the last activity.
 */
export class Activity {
  private last = Date.now();

  touch(): void {
    this.last = Date.now();
  }

  snapshot(runningCommands: number, runningTerminals: number): SandboxActivity {
    const at = runningCommands + runningTerminals > 0 ? Date.now() : this.last;
    return { last_activity_at: utcTimestamp(new Date(at)), running_commands: runningCommands, running_terminals: runningTerminals };
  }
}
