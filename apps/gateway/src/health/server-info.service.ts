import { Injectable } from '@nestjs/common';
import { projectVersion } from '@berth/config';

/** The OpenHands agent-server API level Berth speaks (clients refuse servers below 1.28.0). */
export const OPENHANDS_API_VERSION = '1.58.2';
export const USABLE_TOOLS = ['terminal', 'file_editor', 'task_tracker', 'finish', 'think'];

/**
 * The `/server_info` capabilities: exactly the OpenHands 1.58 ones that are true of Berth, and
 * nothing else (clients switch behaviour on them). What OpenHands 1.58.2 advertises and Berth does not:
 * - `profile_persona_v1`: an agent profile's persona (Berth keeps its own system prompt: persona must be null);
 * - `profile_public_skills_v1`, `skill_catalog_v1`: Berth has no skills;
 * - `credential_binding_v1`, `credential_binding_readiness_probe_v1`, `credential_binding_activation_guard_v1`:
 *   no credential bindings (managed subscription sign-in);
 * - `canvas_app_backend_bridge_v1` (only with an app backend ingress): none.
 */
export const CAPABILITIES = [
  // Conversation-addressed runtime routes: /api/conversations/{id}/bash|file|git/*, and …/runtime, …/runtime/reprovision.
  'conversation_runtime_routes_v1',
  // A create with a known conversation_id answers 200 with that conversation, its initial message not sent again.
  'idempotent_conversation_create_v1',
  // GET /api/tools/catalog.
  'tool_catalog_v1',
  // Agent profiles: secret_refs scope the secrets a launched agent gets.
  'profile_secret_scope_v1',
  // POST /api/agent-profiles/{name}/materialize with a draft body.
  'agent_profile_draft_materialize_v1',
  // POST /api/conversations with agent_profile_id (+ agent_launch_additions): launched from a stored profile.
  'agent_launch_pipeline_v1',
] as const;

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
      // Conversations run where the server puts them (Berth's sandboxes): a start request cannot choose.
      conversation_runtime: 'local',
      available_conversation_runtimes: [],
      capabilities: [...CAPABILITIES],
      app_backend_ingress_url: null,
      max_foreground_terminal_timeout_seconds: null,
      docs: '/docs',
      redoc: null,
    };
  }
}
