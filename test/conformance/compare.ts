import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The comparison rules of the conformance suite: the shape of a JSON answer (keys and JSON types,
 * recursively — never values), differences between the reference's answer and Berth's, and the
 * allowlist (differences.json) that every remaining difference must be listed in, with its reason.
 */

export type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/** A JSON value flattened to `path → the JSON types seen there`. */
export type Shape = Map<string, Set<JsonType>>;

function typeOf(value: unknown): JsonType {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value as JsonType;
}

/**
 * Array elements are merged: objects with a `kind` are grouped by it (and by `key` for state
 * updates), so a list of events compares each kind with the same kind; other elements share `[]`.
 */
function elementLabel(value: unknown): string {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    if (typeof o.kind === 'string') return typeof o.key === 'string' ? `[${o.kind}:${o.key}]` : `[${o.kind}]`;
  }
  return '[]';
}

export function shapeOf(value: unknown, path = '$', into: Shape = new Map()): Shape {
  const t = typeOf(value);
  if (!into.has(path)) into.set(path, new Set());
  into.get(path)!.add(t);
  if (t === 'object') for (const [k, v] of Object.entries(value as object)) shapeOf(v, `${path}.${k}`, into);
  if (t === 'array') for (const v of value as unknown[]) shapeOf(v, `${path}${elementLabel(v)}`, into);
  return into;
}

export interface Difference {
  /** the request or scenario, e.g. `GET /api/conversations/{conversation_id} (valid)` */
  scenario: string;
  check: 'status' | 'shape' | 'header' | 'events' | 'frames' | 'served' | 'values';
  /** where: a JSON path, a header name, a frame index… */
  path: string;
  detail: string;
}

export const describeDifference = (d: Difference) => `${d.scenario} | ${d.check} | ${d.path} | ${d.detail}`;

const parentOf = (path: string) => path.replace(/(\.[^.[\]]+|\[[^\]]*\])$/, '');
const typesText = (s: Set<JsonType> | undefined) => (s ? [...s].sort().join('|') : 'absent');

/** The shape differences of two JSON values, reported at the highest path where they part. */
export function compareShapes(scenario: string, reference: unknown, berth: unknown): Difference[] {
  const a = shapeOf(reference);
  const b = shapeOf(berth);
  const out: Difference[] = [];
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const path of paths) {
    const ta = a.get(path);
    const tb = b.get(path);
    if (ta && tb) {
      if (typesText(ta) !== typesText(tb)) out.push({ scenario, check: 'shape', path, detail: `type ${typesText(tb)} in Berth, ${typesText(ta)} in the reference` });
      continue;
    }
    // Only where the parent exists on both sides as the same container: a missing subtree is one difference.
    const parent = parentOf(path);
    if (parent !== path && (!a.has(parent) || !b.has(parent) || typesText(a.get(parent)) !== typesText(b.get(parent)))) continue;
    const element = /\[[^\]]*\]$/.test(path);
    if (!tb) out.push({ scenario, check: 'shape', path, detail: element ? 'element kind only in the reference' : 'missing in Berth' });
    else out.push({ scenario, check: 'shape', path, detail: element ? 'element kind only in Berth' : 'only in Berth' });
  }
  return out;
}

/** Two sequences (event kinds, frames), reported as one difference with both when they differ. */
export function compareSequences(scenario: string, check: Difference['check'], path: string, reference: string[], berth: string[]): Difference[] {
  if (JSON.stringify(reference) === JSON.stringify(berth)) return [];
  return [{ scenario, check, path, detail: `Berth ${JSON.stringify(berth)}, reference ${JSON.stringify(reference)}` }];
}

export function compareValues(scenario: string, check: Difference['check'], path: string, reference: unknown, berth: unknown): Difference[] {
  if (JSON.stringify(reference) === JSON.stringify(berth)) return [];
  return [{ scenario, check, path, detail: `${JSON.stringify(berth) ?? 'absent'} in Berth, ${JSON.stringify(reference) ?? 'absent'} in the reference` }];
}

// ------------------------------------------------------------------------------------------------
// The allowlist

export type AllowedStatus = 'on purpose' | 'not yet built' | 'in progress (issue 12)';

export interface AllowedDifference {
  /** the spec file that finds it: `routes` (routes.e2e-spec.ts), `runs` (runs.e2e-spec.ts) or `mcp` (mcp.e2e-spec.ts) */
  suite: 'routes' | 'runs' | 'mcp';
  /** patterns (`*` = anything; a list: any of them) over the difference's scenario, check and path */
  scenario: string | string[];
  check: Difference['check'];
  path: string | string[];
  /** what differs and why, in sentences a user reads (the README "Differences" is written from them) */
  what: string;
  why: string;
  status: AllowedStatus;
}

export interface Allowlist {
  about: string;
  differences: AllowedDifference[];
  /** the reference's routes Berth does not serve, by router (OpenAPI tag); written by the routes suite */
  not_served: Record<string, string[]>;
}

export const ALLOWLIST_PATH = join(__dirname, 'differences.json');
const STATUSES: AllowedStatus[] = ['on purpose', 'not yet built', 'in progress (issue 12)'];

export function readAllowlist(): Allowlist {
  const list = JSON.parse(readFileSync(ALLOWLIST_PATH, 'utf8')) as Allowlist;
  for (const entry of list.differences) {
    for (const field of ['suite', 'scenario', 'check', 'path', 'what', 'why', 'status'] as const) {
      const value = entry[field];
      if (!(Array.isArray(value) ? value.length && value.every((v) => typeof v === 'string' && v) : typeof value === 'string' && value)) throw new Error(`differences.json: an entry lacks "${field}": ${JSON.stringify(entry)}`);
    }
    if (!STATUSES.includes(entry.status)) throw new Error(`differences.json: status must be one of ${STATUSES.join(', ')}: ${JSON.stringify(entry)}`);
  }
  return list;
}

export function writeNotServed(notServed: Record<string, string[]>): void {
  const list = JSON.parse(readFileSync(ALLOWLIST_PATH, 'utf8')) as Allowlist;
  list.not_served = notServed;
  writeFileSync(ALLOWLIST_PATH, `${JSON.stringify(list, null, 2)}\n`);
}

const globRegex = (pattern: string) => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');

const matchesAny = (patterns: string | string[], value: string) => [patterns].flat().some((p) => globRegex(p).test(value));

export function allows(entry: AllowedDifference, d: Difference): boolean {
  return entry.check === d.check && matchesAny(entry.scenario, d.scenario) && matchesAny(entry.path, d.path);
}

/**
 * The differences no entry allows, and the entries of this suite that allowed nothing (stale: the
 * difference is gone, so the entry must go too).
 */
export function judge(suite: AllowedDifference['suite'], found: Difference[], list: Allowlist = readAllowlist()) {
  const entries = list.differences.filter((e) => e.suite === suite);
  const used = new Set<AllowedDifference>();
  const unexpected: string[] = [];
  for (const d of found) {
    const entry = entries.find((e) => allows(e, d));
    if (entry) used.add(entry);
    else unexpected.push(describeDifference(d));
  }
  const stale = entries.filter((e) => !used.has(e)).map((e) => `${[e.scenario].flat().join(', ')} | ${e.check} | ${[e.path].flat().join(', ')} (${e.what})`);
  return { unexpected, stale, allowed: found.length - unexpected.length };
}
