import { NotFoundException } from '@nestjs/common';
import { CONVERSATION_WORKSPACE_ROUTES, EXECUTOR_API_PREFIX, executorRouteOf, isPlainPath, PUBLIC_WORKSPACE_ROUTES } from '@berth/contracts';

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
  if (!isPlainPath(path) || !executorRouteOf(path, PUBLIC_WORKSPACE_ROUTES)) throw notFound();
  return path;
}

/**
 * `/api/conversations/{id}/<route>` checked as `requirePublicWorkspacePath` checks: the
 * conversation id as sent, and the executor's path for the route (`/api/<route>`). What OpenHands'
 * runtime router mounts there: bash, the file routes (not the folder picker's), git; VS Code is
 * answered by the gateway.
 */
export function requireConversationWorkspacePath(url: string): { conversationId: string; executorPath: string } {
  const path = url.split('?')[0];
  const m = isPlainPath(path) ? CONVERSATION_PREFIX.exec(path) : null;
  const executorPath = m ? `${EXECUTOR_API_PREFIX}${m[2]}` : '';
  if (!m || !executorRouteOf(executorPath, CONVERSATION_WORKSPACE_ROUTES)) throw notFound();
  return { conversationId: m[1], executorPath };
}
