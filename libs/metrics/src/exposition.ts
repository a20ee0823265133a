import { constantTimeEqual } from '@berth/crypto';
import { metricsRegistry } from './registry';

/** The registry in Prometheus' text exposition format. */
export async function scrapeMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}

/** Whether a scrape may read /metrics: always without BERTH_METRICS_TOKEN, else with `Authorization: Bearer <token>`. */
export function metricsAccessAllowed(token: string | null, authorization: string | string[] | undefined): boolean {
  if (!token) return true;
  if (typeof authorization !== 'string') return false;
  const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  return match !== null && constantTimeEqual(match[1], token);
}
