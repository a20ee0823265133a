import { NotFoundException } from '@nestjs/common';
import { isPlainPath } from '@berth/contracts';

/** The bash routes of the OpenHands agent server, everywhere they are mounted. */
const BASH_ROUTES = 'bash\\/(start_bash_command|execute_bash_command|bash_events\\/search\\/?|bash_events\\/?|bash_events\\/[^/]+|bash_commands\\/[^/]+\\/stop)';
/** Its git routes a sandbox serves (the provider search is not the sandbox's). */
const GIT_ROUTES = 'git\\/(changes|diff|commits|commits\\/[^/]+\\/changes)';

/** The workspace routes of the OpenHands agent server that a sandbox's executor serves to clients. */
const PUBLIC_WORKSPACE_ROUTE = new RegExp(`^\\/api\\/(file\\/(upload|download|create_directory|archive|home|search_subdirs)|${BASH_ROUTES}|${GIT_ROUTES})$`);

/**
 * What OpenHands' runtime router mounts under `/api/conversations/{id}/` and the executor serves:
 * bash, the file routes (not the folder picker's `home` and `search_subdirs`), git. (VS Code is
 * answered by the gateway.)
 */
const CONVERSATION_WORKSPACE_ROUTE = new RegExp(`^(file\\/(upload|download|create_directory|archive)|${BASH_ROUTES}|${GIT_ROUTES})$`);

const CONVERSATION_PREFIX = /^\/api\/conversations\/([^/]+)\/(.*)$/;

function notFound(): NotFoundException {
  return new NotFoundException({ detail: 'Not Found' });
}

/**
 * The path a workspace call is forwarded with, checked as it was sent: only the public workspace
 * routes, and nothing a URL parser would rewrite on the way (`/api/bash/%2e%2e/tools/execute`
 * became the executor's internal `/api/tools/execute`). Anything else is a 404.
 */
export function requirePublicWorkspacePath(url: string): string {
  const path = url.split('?')[0];
  if (!isPlainPath(path) || !PUBLIC_WORKSPACE_ROUTE.test(path)) throw notFound();
  return path;
}

/**
 * `/api/conversations/{id}/<route>` checked as `requirePublicWorkspacePath` checks: the
 * conversation id as sent, and the executor's path for the route (`/api/<route>`).
 */
export function requireConversationWorkspacePath(url: string): { conversationId: string; executorPath: string } {
  const path = url.split('?')[0];
  const m = isPlainPath(path) ? CONVERSATION_PREFIX.exec(path) : null;
  if (!m || !CONVERSATION_WORKSPACE_ROUTE.test(m[2])) throw notFound();
  return { conversationId: m[1], executorPath: `/api/${m[2]}` };
}
