import { z } from 'zod';
import { parseUuid, uuidHex } from './ids';

/**
 * The workspace surface of a sandbox (contract §3.4–3.6, §4.2, §7.1): bash commands and their
 * events, files, git — served by the executor with OpenHands' paths and bodies, and exposed by the
 * gateway under `/sandboxes/{id}/api/...` as a plain pass-through. Bash event ids are 32-hex
 * (OpenHands' `OpenHandsUUID`), bash timestamps tz-aware UTC (`…Z`).
 */

// ---------------------------------------------------------------------------------------------
// Bash

/** Lax integer, as pydantic reads a query string or a JSON number: `"5"`, `5`, `5.0`. */
const laxInt = z.preprocess((v) => {
  if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return Number(v);
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  return v;
}, z.number().int());

const hexId = z.string().regex(/^[0-9a-f]{32}$/).describe('32-hex id (OpenHands UUID without dashes)');
const utcTimestamp = z.string().describe('tz-aware UTC ISO timestamp, e.g. 2026-08-22T04:30:00.123456Z');

export const ExecuteBashRequestSchema = z
  .looseObject({
    command: z.string().describe('The bash command to execute'),
    cwd: z.string().nullable().default(null).describe('The working directory (absolute, inside the sandbox; default: the sandbox root)'),
    timeout: laxInt.default(300).describe('The max number of seconds the command may run; then its process group is killed'),
  })
  .meta({ id: 'ExecuteBashRequest' });
export type ExecuteBashRequest = z.output<typeof ExecuteBashRequestSchema>;

export const BashCommandSchema = z
  .object({
    id: hexId,
    timestamp: utcTimestamp,
    command: z.string(),
    cwd: z.string().nullable(),
    timeout: z.number().int(),
    kind: z.literal('BashCommand'),
  })
  .meta({ id: 'BashCommand' });
export type BashCommand = z.output<typeof BashCommandSchema>;

export const BashOutputSchema = z
  .object({
    id: hexId,
    timestamp: utcTimestamp,
    command_id: hexId,
    order: z.number().int().describe('The order for this output, sequentially starting with 0'),
    exit_code: z.number().int().nullable().describe('null while the command is running; -1 after a timeout or a spawn error'),
    stdout: z.string().nullable(),
    stderr: z.string().nullable(),
    kind: z.literal('BashOutput'),
  })
  .meta({ id: 'BashOutput' });
export type BashOutput = z.output<typeof BashOutputSchema>;

/** Sent on `/sockets/bash-events` when a client frame cannot start a command. */
export const BashErrorSchema = z
  .object({
    id: hexId,
    timestamp: utcTimestamp,
    code: z.string().describe('Error type, e.g. ValidationError'),
    detail: z.string(),
    kind: z.literal('BashError'),
  })
  .meta({ id: 'BashError' });
export type BashError = z.output<typeof BashErrorSchema>;

export const BashEventSchema = z.discriminatedUnion('kind', [BashCommandSchema, BashOutputSchema]).meta({ id: 'BashEvent' });
export type BashEvent = BashCommand | BashOutput;

export const BASH_EVENT_KINDS = ['BashCommand', 'BashOutput'] as const;
export const BASH_SORT_ORDERS = ['TIMESTAMP', 'TIMESTAMP_DESC'] as const;

/** An ISO datetime query value (naive = UTC, as bash event times are). */
const isoDateTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/i, 'Input should be a valid datetime')
  .refine((v) => bashFilterPrefix(v) !== null, 'Input should be a valid datetime');

const uuidQuery = z
  .string()
  .refine((v) => parseUuid(v) !== null, 'Input should be a valid UUID')
  .transform((v) => uuidHex(parseUuid(v)!));

/** `GET /api/bash/bash_events/search` query parameters. */
export const BashEventSearchQuerySchema = z.looseObject({
  kind__eq: z.enum(BASH_EVENT_KINDS).optional(),
  command_id__eq: uuidQuery.optional().describe('Only the outputs of this command (dashed or 32-hex)'),
  timestamp__gte: isoDateTime.optional(),
  timestamp__lt: isoDateTime.optional(),
  order__gt: laxInt.optional().describe('Only BashOutput events with order > this value (events without order are kept)'),
  sort_order: z.enum(BASH_SORT_ORDERS).default('TIMESTAMP'),
  page_id: z.string().max(300).optional().describe('next_page_id of the previous page (an event file name)'),
  limit: laxInt.pipe(z.number().min(1).max(100)).default(100),
});
export type BashEventSearchQuery = z.output<typeof BashEventSearchQuerySchema>;

export const BashEventPageSchema = z
  .object({ items: z.array(BashEventSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'BashEventPage' });
export type BashEventPage = { items: BashEvent[]; next_page_id: string | null };

/** `GET /api/bash/bash_events/` body: the ids to fetch (null for each one not found). */
export const BashEventIdsBodySchema = z.array(z.string().max(200)).max(100).meta({ id: 'BashEventIds' });

export const ClearedCountSchema = z.object({ cleared_count: z.number().int() }).meta({ id: 'ClearedCount' });

/** `resend_mode` / `resend_all` of `/sockets/bash-events`. */
export const BashSocketQuerySchema = z.looseObject({
  resend_mode: z.enum(['all']).optional(),
  resend_all: z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off']).optional(),
});

/** `20260822043000123456` from `2026-08-22T04:30:00.123456Z`: the prefix of an event's file name. */
export function bashTimestampPrefix(timestamp: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?/.exec(timestamp);
  if (!m) throw new Error(`Not a bash event timestamp: ${timestamp}`);
  return `${m[1]}${m[2]}${m[3]}${m[4]}${m[5]}${m[6]}${(m[7] ?? '').padEnd(6, '0')}`;
}

/**
 * OpenHands' event file name: `<YYYYmmddHHMMSSffffff UTC>_<kind>[_<command_id hex>]_<event_id hex>`.
 * Lexicographic order of names is time order.
 */
export function bashEventFileName(event: BashEvent): string {
  const parts = [bashTimestampPrefix(event.timestamp), event.kind];
  if (event.kind === 'BashOutput') parts.push(event.command_id);
  parts.push(event.id);
  return parts.join('_');
}

/**
 * The file-name prefix of a `timestamp__gte`/`timestamp__lt` filter: tz-aware values are converted
 * to UTC, naive ones are taken as UTC (bash event times are UTC). Null when not a real datetime.
 */
export function bashFilterPrefix(value: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(value.trim());
  if (!m) return null;
  const [y, mo, d, h = '0', mi = '0', s = '0'] = m.slice(1, 7) as string[];
  const micros = Number((m[7] ?? '').slice(0, 6).padEnd(6, '0'));
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const probe = new Date(ms);
  if (probe.getUTCFullYear() !== Number(y) || probe.getUTCMonth() !== Number(mo) - 1 || probe.getUTCDate() !== Number(d)) return null;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return null;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000;
  }
  const at = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${pad(at.getUTCFullYear(), 4)}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}` +
    `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}${pad(micros, 6)}`
  );
}

// ---------------------------------------------------------------------------------------------
// Files

export const FilePathQuerySchema = z.looseObject({
  path: z.string().describe('Absolute path inside the sandbox'),
});

/** A boolean query value as pydantic reads one. */
const queryBool = z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off']).transform((v) => ['true', '1', 'yes', 'on'].includes(v));

export const FileHomeQuerySchema = z.looseObject({
  include_hidden: queryBool.optional().describe('Include hidden top-level directories in `favorites`'),
});

/** `GET /api/file/search_subdirs` query parameters. */
export const SearchSubdirsQuerySchema = z.looseObject({
  path: z.string().describe('Absolute directory path to list subdirectories of'),
  page_id: z.string().max(4096).optional().describe('next_page_id of the previous page (the name of its first item)'),
  limit: laxInt.pipe(z.number().gt(0).max(100)).default(100),
  include_hidden: queryBool.default(false).describe("Include hidden subdirectories (names starting with '.')"),
});
export type SearchSubdirsQuery = z.output<typeof SearchSubdirsQuerySchema>;

export const SubdirectoryEntrySchema = z.object({ name: z.string(), path: z.string() }).meta({ id: 'SubdirectoryEntry' });
export const SubdirectoryPageSchema = z
  .object({ items: z.array(SubdirectoryEntrySchema), next_page_id: z.string().nullable() })
  .meta({ id: 'SubdirectoryPage' });
export type SubdirectoryPage = z.output<typeof SubdirectoryPageSchema>;

export const ARCHIVE_FORMATS = ['git-delta', 'tar.gz'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

/**
 * `GET /api/file/archive` query parameters (`exclude` is repeatable: the executor passes every
 * value as a list).
 */
export const FileArchiveQuerySchema = z.looseObject({
  path: z.string().describe('Absolute path of the directory to archive (a folder holding exactly one repository, up to three levels down, archives that repository)'),
  format: z.enum(ARCHIVE_FORMATS).default('git-delta').describe("'git-delta': a git patch of the working tree against a base; 'tar.gz': the files"),
  base_ref: z.string().max(256).optional().describe("Only for git-delta: the base to diff against (default: the remote branch, the fork point, else the empty tree)"),
  use_default_excludes: queryBool.default(true).describe('Apply the built-in excludes (node_modules/, .venv/, caches, build outputs, …)'),
  exclude: z.array(z.string().min(1).max(1024)).max(200).default([]).describe('More glob patterns to exclude (repeatable)'),
});
export type FileArchiveQuery = z.output<typeof FileArchiveQuerySchema>;

export const FileBrowserEntrySchema = z.object({ label: z.string(), path: z.string() }).meta({ id: 'FileBrowserEntry' });
export type FileBrowserEntry = z.output<typeof FileBrowserEntrySchema>;

/** `GET /api/file/home`: the sandbox root plays the home. */
export const FileHomeSchema = z
  .object({
    home: z.string(),
    favorites: z.array(FileBrowserEntrySchema).describe('Top-level directories of the sandbox root, sorted, at most 50'),
    locations: z.array(FileBrowserEntrySchema),
  })
  .meta({ id: 'HomeResponse' });
export type FileHome = z.output<typeof FileHomeSchema>;

// ---------------------------------------------------------------------------------------------
// Git

export const GIT_CHANGE_STATUSES = ['MOVED', 'ADDED', 'DELETED', 'UPDATED'] as const;
export type GitChangeStatus = (typeof GIT_CHANGE_STATUSES)[number];

export const GitChangeSchema = z
  .object({ status: z.enum(GIT_CHANGE_STATUSES), path: z.string().describe('POSIX path relative to the repository path asked for') })
  .meta({ id: 'GitChange' });
export type GitChange = z.output<typeof GitChangeSchema>;

export const GitDiffSchema = z
  .object({
    modified: z.string().nullable().describe('Current content of the file ("": missing or binary; null: too large or not in a repository)'),
    original: z.string().nullable().describe('Content at the base ref ("": not there; null: too large or not in a repository)'),
  })
  .meta({ id: 'GitDiff' });
export type GitDiff = z.output<typeof GitDiffSchema>;

const gitRef = z
  .string()
  .min(1)
  .max(256)
  .refine((v) => !v.startsWith('-'), 'ref must not start with "-"');

export const GitChangesQuerySchema = z.looseObject({
  path: z.string().describe('The repository directory (absolute)'),
  ref: gitRef.optional().describe('Base to compare with; default: the upstream/default branch, else HEAD; "HEAD" = git status'),
});

/** A commit as a client names one: hex only, so it can never reach git's argv as an option. */
export const GitShaSchema = z.string().regex(/^[0-9a-fA-F]{4,64}$/, "String should match pattern '^[0-9a-fA-F]{4,64}$'");

export const GitDiffQuerySchema = z.looseObject({
  path: z.string().describe('The file (absolute)'),
  ref: gitRef.optional(),
  commit: GitShaSchema.optional().describe("The change this commit introduced (vs its first parent), read from git objects; not with 'ref' (400)"),
});

/** `GET /api/git/commits` query parameters. */
export const GitCommitsQuerySchema = z.looseObject({
  path: z.string().describe('The git repository path'),
  limit: laxInt.pipe(z.number().min(1).max(200)).default(50).describe('Maximum commits to return'),
});

/** `GET /api/git/commits/{sha}/changes` query parameters. */
export const GitCommitChangesQuerySchema = z.looseObject({
  path: z.string().describe('The git repository path'),
});

export const GitCommitSchema = z
  .object({
    sha: z.string(),
    short_sha: z.string(),
    subject: z.string(),
    author: z.string(),
    timestamp: z.string().describe('ISO 8601 author date with its UTC offset (git log %aI)'),
  })
  .meta({ id: 'GitCommit' });
export type GitCommit = z.output<typeof GitCommitSchema>;

export const GitCommitsPageSchema = z
  .object({ commits: z.array(GitCommitSchema).describe('Newest first, reachable from HEAD'), has_more: z.boolean() })
  .meta({ id: 'GitCommitsPage' });
export type GitCommitsPage = z.output<typeof GitCommitsPageSchema>;

// ---------------------------------------------------------------------------------------------
// VS Code (a Berth sandbox runs none: OpenHands' answers with VS Code disabled)

export const VSCODE_DISABLED_DETAIL = 'VSCode is disabled in configuration. Set enable_vscode=true to enable.';

export const VSCodeUrlQuerySchema = z.looseObject({
  base_url: z.string().max(2048).optional(),
  workspace_dir: z.string().max(4096).optional(),
});
export const VSCodeUrlResponseSchema = z.object({ url: z.string().nullable() }).meta({ id: 'VSCodeUrlResponse' });
export const VSCodeStatusSchema = z.object({ running: z.boolean(), enabled: z.boolean(), message: z.string().optional() }).meta({ id: 'VSCodeStatus' });

// ---------------------------------------------------------------------------------------------
// Activity (read by the gateway's idle clock)

export const SandboxActivitySchema = z
  .object({
    last_activity_at: utcTimestamp.describe('Last file, bash, git or tool call, or command output'),
    running_commands: z.number().int().describe('Bash commands (/api/bash) still running'),
    running_terminals: z.number().int().describe('Terminal tool commands still running'),
  })
  .meta({ id: 'SandboxActivity' });
export type SandboxActivity = z.output<typeof SandboxActivitySchema>;
