import type { BerthConfig } from '@berth/config';
import { join } from 'node:path';

/** One start-up line: its text and the same facts as fields. */
export interface SummaryLine {
  msg: string;
  [field: string]: unknown;
}

/** host:port/db of a connection URL, never its user or password. */
function endpointOf(url: string, defaultPort: number, withDatabase: boolean): string {
  try {
    const parsed = new URL(url);
    const database = withDatabase ? parsed.pathname.replace(/^\/+/, '') : '';
    return `${parsed.hostname}:${parsed.port || defaultPort}${database ? `/${database}` : ''}`;
  } catch {
    return 'an unparsable URL';
  }
}

/**
 * What a process runs on, in a few lines (README "Logs"): storage, queue and event bus, sandbox
 * driver and isolation, webhooks. No credential: URLs are reduced to host, port and database.
 */
export function deploymentSummary(config: BerthConfig): SummaryLine[] {
  const storage = config.databaseUrl
    ? { msg: `storage: PostgreSQL at ${endpointOf(config.databaseUrl, 5432, true)}`, storage: 'postgresql', database: endpointOf(config.databaseUrl, 5432, true) }
    : { msg: `storage: embedded PostgreSQL (PGlite) in ${join(config.dataDir, 'db')}`, storage: 'pglite', data_dir: join(config.dataDir, 'db') };
  const queue = config.redisUrl
    ? { msg: `queue and event bus: Redis at ${endpointOf(config.redisUrl, 6379, false)}`, queue: 'redis', redis: endpointOf(config.redisUrl, 6379, false) }
    : { msg: 'queue and event bus: in-process', queue: 'in-process' };
  const sandboxes =
    config.sandboxDriver === 'kubernetes'
      ? { msg: `sandboxes: kubernetes driver, pods in namespace ${config.kubernetes?.namespace} fenced by NetworkPolicies`, sandbox_driver: 'kubernetes', namespace: config.kubernetes?.namespace }
      : {
          msg: `sandboxes: local driver, ${config.sandboxIsolation === 'bwrap' ? 'isolated by bubblewrap' : 'NOT isolated (BERTH_SANDBOX_ISOLATION=none)'}, network ${config.sandboxNetwork}`,
          sandbox_driver: 'local',
          isolation: config.sandboxIsolation,
          network: config.sandboxNetwork,
        };
  const webhooks = { msg: `webhooks: ${config.webhooks.length}`, webhooks: config.webhooks.length };
  return [storage, queue, sandboxes, webhooks];
}
