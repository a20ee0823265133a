import { uuidHex } from '@berth/contracts';

/** Keyset paging newest first on (created_at, id), as the other lists page. */
export const NEWEST_FIRST = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];

/** The condition for rows from `start` (the page id's row) on; none when the page id is unknown. */
export function fromStart(start: { createdAt: Date; id: string } | null) {
  return start ? { OR: [{ createdAt: { lt: start.createdAt } }, { createdAt: start.createdAt, id: { lte: start.id } }] } : {};
}

/** One page of `limit + 1` rows read: the page and the next page's id. */
export function pageOf<T extends { id: string }>(rows: T[], limit: number): { rows: T[]; nextPageId: string | null } {
  return { rows: rows.slice(0, limit), nextPageId: rows.length > limit ? uuidHex(rows[limit].id) : null };
}
