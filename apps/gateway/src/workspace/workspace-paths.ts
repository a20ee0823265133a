import { NotFoundException } from '@nestjs/common';
import { isPlainPath } from '@berth/contracts';

/** The workspace routes of the OpenHands agent server that a sandbox's executor serves to clients. */
const PUBLIC_WORKSPACE_ROUTE =
  /^\/api\/(file\/(upload|download|create_directory|home)|bash\/(start_bash_command|execute_bash_command|bash_events\/search\/?|bash_events\/?|bash_events\/[^/]+)|git\/(changes|diff))$/;

/**
 * The path a workspace call is forwarded with, checked as it was sent: only the public workspace
 * routes, and nothing a URL parser would rewrite on the way (`/api/bash/%2e%2e/tools/execute`
 * became the executor's internal `/api/tools/execute`). Anything else is a 404.
 */
export function requirePublicWorkspacePath(url: string): void {
  const path = url.split('?')[0];
  if (!isPlainPath(path) || !PUBLIC_WORKSPACE_ROUTE.test(path)) throw new NotFoundException({ detail: 'Not Found' });
}
