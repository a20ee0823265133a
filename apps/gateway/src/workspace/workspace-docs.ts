import type { OpenAPIObject, OperationObject, ParameterObject, RequestBodyObject, ResponseObject } from '@nestjs/swagger';
import {
  BashCommandSchema,
  BashEventIdsBodySchema,
  BashEventPageSchema,
  BashEventSchema,
  BashEventSearchQuerySchema,
  BashOutputSchema,
  ClearedCountSchema,
  CONVERSATION_WORKSPACE_ROUTES,
  EXECUTOR_PATHS,
  ExecuteBashRequestSchema,
  FileArchiveQuerySchema,
  FileHomeQuerySchema,
  FileHomeSchema,
  FilePathQuerySchema,
  GitChangeSchema,
  GitChangesQuerySchema,
  GitCommitChangesQuerySchema,
  GitCommitsPageSchema,
  GitCommitsQuerySchema,
  GitDiffQuerySchema,
  GitDiffSchema,
  GitShaSchema,
  PUBLIC_WORKSPACE_ROUTES,
  SearchSubdirsQuerySchema,
  SubdirectoryPageSchema,
  SuccessSchema,
} from '@berth/contracts';
import type { ExecutorPathName } from '@berth/contracts';
import { z } from 'zod';
import { errorResponses, queryParametersOf, schemaOf } from '../common/api-docs';

/**
 * The file, bash and git routes in the OpenAPI document. They are served by wildcard handlers that
 * pass the call to the sandbox's executor (WorkspaceController, ConversationRuntimeController), so
 * the document lists them here, one operation per route the executor serves, with OpenHands'
 * handler names, parameters, bodies and answers.
 */

type Method = 'get' | 'post' | 'delete';

interface RouteDoc {
  /** OpenHands' handler name (the operationId is FastAPI's, built from it). */
  name: string;
  summary: string;
  query?: z.ZodObject;
  /** Path parameters, by the `{name}` of the executor's path. */
  params?: Record<string, z.ZodType>;
  body?: RequestBodyObject;
  ok: ResponseObject;
  /** The route can answer 404 (an unknown event or command). */
  notFound?: boolean;
}

const json = (schema: z.ZodType, description: string, example?: unknown): ResponseObject => ({
  description,
  content: { 'application/json': { schema: schemaOf(schema) as never, ...(example === undefined ? {} : { example }) } },
});
const bytes = (description: string, mediaTypes: string[]): ResponseObject => ({
  description,
  content: Object.fromEntries(mediaTypes.map((type) => [type, { schema: { type: 'string', format: 'binary' } }])),
});
const jsonBody = (schema: z.ZodType, example: unknown): RequestBodyObject => ({
  required: true,
  content: { 'application/json': { schema: schemaOf(schema) as never, example } },
});

const ID = 'c0a2b5e4d1f64b0e9a7d3c2b1a0f9e8d';
const AT = '2026-08-22T04:30:00.123456Z';
const BASH_REQUEST = { command: 'ls -la', cwd: '/workspace/project', timeout: 60 };
const eventId = z.string().describe('The event id (32-hex or dashed UUID)');
const commandId = z.string().describe('The command id (32-hex or dashed UUID)');

const ROUTES: Partial<Record<ExecutorPathName, Partial<Record<Method, RouteDoc>>>> = {
  fileUpload: {
    post: {
      name: 'upload_file_query',
      summary: 'Upload a file to the workspace (streamed; parent folders are made)',
      query: FilePathQuerySchema,
      body: {
        required: true,
        content: {
          'multipart/form-data': {
            schema: { type: 'object', required: ['file'], properties: { file: { type: 'string', format: 'binary', description: 'The file content' } } },
          },
        },
      },
      ok: json(z.object({ success: z.boolean(), file_size: z.number().int() }), 'Uploaded', { success: true, file_size: 1024 }),
    },
  },
  fileDownload: {
    get: { name: 'download_file_query', summary: 'Download a file from the workspace (streamed)', query: FilePathQuerySchema, ok: bytes("The file's bytes", ['application/octet-stream']) },
  },
  fileCreateDirectory: {
    post: {
      name: 'create_directory',
      summary: 'Create a directory, with any missing parents (an existing one succeeds)',
      query: FilePathQuerySchema,
      ok: json(SuccessSchema, 'Created', { success: true }),
    },
  },
  fileArchive: {
    get: {
      name: 'archive_directory',
      summary: 'Archive a workspace directory: a git patch against a base, or a tar.gz of its files',
      query: FileArchiveQuerySchema,
      ok: bytes('The archive (as an attachment)', ['text/x-patch', 'application/gzip']),
    },
  },
  fileHome: {
    get: {
      name: 'get_home_directory',
      summary: "The sandbox root (the home) and its top-level folders, for a folder picker",
      query: FileHomeQuerySchema,
      ok: json(FileHomeSchema, 'The home and its folders', { home: '/workspace', favorites: [{ label: 'project', path: '/workspace/project' }], locations: [{ label: 'Home', path: '/workspace' }] }),
    },
  },
  fileSearchSubdirs: {
    get: {
      name: 'search_subdirs',
      summary: 'The subdirectories of a folder, a page at a time',
      query: SearchSubdirsQuerySchema,
      ok: json(SubdirectoryPageSchema, 'A page of subdirectories', { items: [{ name: 'src', path: '/workspace/project/src' }], next_page_id: null }),
    },
  },
  bashStartCommand: {
    post: {
      name: 'start_bash_command',
      summary: 'Start a bash command in the background (its output arrives as BashOutput events)',
      body: jsonBody(ExecuteBashRequestSchema, BASH_REQUEST),
      ok: json(BashCommandSchema, 'The command, started', { id: ID, timestamp: AT, ...BASH_REQUEST, kind: 'BashCommand' }),
    },
  },
  bashExecuteCommand: {
    post: {
      name: 'execute_bash_command',
      summary: 'Run a bash command and wait for its result',
      body: jsonBody(ExecuteBashRequestSchema, BASH_REQUEST),
      ok: json(BashOutputSchema, 'Its output', { id: ID, timestamp: AT, command_id: ID, order: 0, exit_code: 0, stdout: 'README.md\n', stderr: null, kind: 'BashOutput' }),
    },
  },
  bashEventsSearch: {
    get: { name: 'search_bash_events', summary: 'Search the bash events (commands and their output)', query: BashEventSearchQuerySchema, ok: json(BashEventPageSchema, 'A page of bash events') },
  },
  bashEvents: {
    get: {
      name: 'batch_get_bash_events',
      summary: 'Bash events by id (null for each one not found); the ids as a JSON body, or as repeated event_ids query values',
      query: z.object({ event_ids: z.array(z.string()).optional().describe('The ids, when no body is sent (repeatable)') }),
      body: { required: false, content: { 'application/json': { schema: schemaOf(BashEventIdsBodySchema) as never } } },
      ok: json(z.array(BashEventSchema.nullable()), 'The events, in the order asked for'),
    },
    delete: { name: 'clear_all_bash_events', summary: 'Clear every bash event', ok: json(ClearedCountSchema, 'How many were cleared', { cleared_count: 12 }) },
  },
  bashEvent: {
    get: { name: 'get_bash_event', summary: 'One bash event', params: { event_id: eventId }, ok: json(BashEventSchema, 'The event'), notFound: true },
  },
  bashCommandStop: {
    post: {
      name: 'stop_bash_command',
      summary: 'Stop a running bash command (a finished one succeeds; an unknown one is 404)',
      params: { command_id: commandId },
      ok: json(SuccessSchema, 'Stopped', { success: true }),
      notFound: true,
    },
  },
  gitChanges: {
    get: {
      name: 'git_changes_query',
      summary: 'The changed files of a repository, against a base',
      query: GitChangesQuerySchema,
      ok: json(z.array(GitChangeSchema), 'The changes', [{ status: 'UPDATED', path: 'src/index.ts' }]),
    },
  },
  gitDiff: {
    get: { name: 'git_diff_query', summary: 'A file as it is and as it was at the base (or in a commit)', query: GitDiffQuerySchema, ok: json(GitDiffSchema, 'Both contents') },
  },
  gitCommits: {
    get: { name: 'git_commits_query', summary: "The repository's latest commits, newest first", query: GitCommitsQuerySchema, ok: json(GitCommitsPageSchema, 'The commits') },
  },
  gitCommitChanges: {
    get: {
      name: 'git_commit_changes_query',
      summary: 'The files one commit changed (vs its first parent)',
      params: { sha: GitShaSchema.describe('Commit SHA') },
      query: GitCommitChangesQuerySchema,
      ok: json(z.array(GitChangeSchema), 'The changes'),
    },
  },
};

const PUBLIC_DESCRIPTION =
  "Served by the sandbox's executor. Under `/sandboxes/{sandbox_id}` the call goes to that sandbox; without it, to the conversation " +
  "whose working dir holds `path`, else to the tenant's home sandbox (anything else is refused).";
const CONVERSATION_DESCRIPTION =
  "In this conversation's sandbox (OpenHands' runtime routes). `path` must lie in the conversation's working dir (422 otherwise); " +
  'a bash command without `cwd` runs there. Another tenant\'s conversation is 404.';
const CONVERSATION_ID: ParameterObject = { name: 'conversation_id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
const NOT_FOUND: ResponseObject = { description: 'No such item', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } };

function operation(doc: RouteDoc, tag: string, description: string, prefixParams: ParameterObject[]): OperationObject {
  const pathParams = Object.entries(doc.params ?? {}).map(([name, schema]): ParameterObject => ({ name, in: 'path', required: true, schema: schemaOf(schema) as never, description: schema.description }));
  return {
    operationId: doc.name,
    summary: doc.summary,
    description,
    tags: [tag],
    security: [{ 'session-api-key': [] }],
    parameters: [...prefixParams, ...pathParams, ...(doc.query ? queryParametersOf(doc.query) : [])],
    ...(doc.body ? { requestBody: doc.body } : {}),
    responses: { '200': doc.ok, ...(doc.notFound ? { '404': NOT_FOUND } : {}), ...errorResponses() },
  };
}

/**
 * Adds the workspace routes: `/api/<route>` for each public one, `/api/conversations/{conversation_id}/<route>`
 * for each a conversation has. Their operationIds are handler names still (finishOperations makes them FastAPI's).
 */
export function addWorkspaceRoutes(document: OpenAPIObject): OpenAPIObject {
  const mounts = [
    { routes: PUBLIC_WORKSPACE_ROUTES, prefix: '', tag: 'Workspace', description: PUBLIC_DESCRIPTION, params: [] },
    { routes: CONVERSATION_WORKSPACE_ROUTES, prefix: '/api/conversations/{conversation_id}', tag: 'Conversation runtime', description: CONVERSATION_DESCRIPTION, params: [CONVERSATION_ID] },
  ];
  for (const mount of mounts) {
    for (const name of mount.routes) {
      const docs = ROUTES[name];
      if (!docs) throw new Error(`The workspace route ${name} has no documentation`);
      const executorPath = EXECUTOR_PATHS[name];
      const path = mount.prefix ? `${mount.prefix}${executorPath.slice('/api'.length)}` : executorPath;
      const item = (document.paths[path] ??= {});
      for (const [method, doc] of Object.entries(docs) as [Method, RouteDoc][]) {
        item[method] = operation(doc, mount.tag, mount.description, mount.params);
      }
    }
  }
  return document;
}
