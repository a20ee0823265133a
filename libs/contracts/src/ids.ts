import { randomUUID } from 'node:crypto';

const UUID_RE = /^([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})$/i;

/** Parses a UUID in dashed or 32-hex form (as OpenHands path params accept) to the dashed form. */
export function parseUuid(value: string): string | null {
  const m = UUID_RE.exec(value.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase() : null;
}

/** 32-hex form, used for page ids, webhook paths and on-disk names. */
export function uuidHex(id: string): string {
  return id.replace(/-/g, '').toLowerCase();
}

export function newUuid(): string {
  return randomUUID();
}
