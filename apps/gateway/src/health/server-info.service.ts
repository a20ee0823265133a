import { Injectable } from '@nestjs/common';
import { projectVersion } from '@berth/config';

/** The OpenHands agent-server API level Berth speaks (clients refuse servers below 1.28.0). */
export const OPENHANDS_API_VERSION = '1.43.1';
export const USABLE_TOOLS = ['terminal', 'file_editor', 'task_tracker', 'finish', 'think'];

/** Uptime and the idle clock that orchestrators read from /server_info to reap idle servers. */
@Injectable()
export class ServerInfoService {
  private readonly startedAt = Date.now();
  private lastActivity = Date.now();
  private readonly version = projectVersion();

  /** Called on real activity (events, commands), not on polling. */
  touch(): void {
    this.lastActivity = Date.now();
  }

  info() {
    const now = Date.now();
    return {
      uptime: Math.floor((now - this.startedAt) / 1000),
      idle_time: Math.floor((now - this.lastActivity) / 1000),
      title: 'OpenHands Agent Server',
      version: OPENHANDS_API_VERSION,
      berth_version: this.version,
      sdk_version: OPENHANDS_API_VERSION,
      tools_version: OPENHANDS_API_VERSION,
      workspace_version: OPENHANDS_API_VERSION,
      build_git_sha: process.env.OPENHANDS_BUILD_GIT_SHA ?? null,
      build_git_ref: process.env.OPENHANDS_BUILD_GIT_REF ?? null,
      python_version: null,
      usable_tools: USABLE_TOOLS,
      runtime_idle_timeout_seconds: null,
      capabilities: [],
      max_foreground_terminal_timeout_seconds: null,
      docs: '/docs',
      redoc: null,
    };
  }
}
