import SwaggerParser from '@apidevtools/swagger-parser';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { api, startServer, TestServer } from './support/server';

const run = promisify(execFile);
const REDOCLY = join(__dirname, '..', 'node_modules', '@redocly', 'cli', 'bin', 'cli.js');

interface LintProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
  location: { pointer?: string }[];
}

/** `redocly lint` with the recommended rules on the document (a temp file), offline: no telemetry, no update check. */
async function redoclyLint(doc: unknown): Promise<LintProblem[]> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-openapi-'));
  try {
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };
    const args = [REDOCLY, 'lint', '--extends', 'recommended', '--max-problems', '10000', '--format', 'json', file];
    // Exits 1 when it finds errors: the JSON report is on stdout either way.
    const { stdout } = await run(process.execPath, args, { cwd: dir, env, maxBuffer: 64 * 1024 * 1024 }).catch((err) => err as { stdout: string });
    return (JSON.parse(stdout) as { problems: LintProblem[] }).problems;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The workspace routes OpenHands 1.58.2 serves (its document), with their parameters: method, path, path and query names. */
const WORKSPACE: [string, string, string[]][] = [
  ['post', '/api/file/upload', ['path']],
  ['get', '/api/file/download', ['path']],
  ['post', '/api/file/create_directory', ['path']],
  ['get', '/api/file/archive', ['path', 'format', 'base_ref', 'use_default_excludes', 'exclude']],
  ['get', '/api/file/home', ['include_hidden']],
  ['get', '/api/file/search_subdirs', ['path', 'page_id', 'limit', 'include_hidden']],
  ['post', '/api/bash/start_bash_command', []],
  ['post', '/api/bash/execute_bash_command', []],
  ['get', '/api/bash/bash_events/search', ['kind__eq', 'command_id__eq', 'timestamp__gte', 'timestamp__lt', 'order__gt', 'sort_order', 'page_id', 'limit']],
  // The ids as a body (OpenHands), or as repeated event_ids query values.
  ['get', '/api/bash/bash_events', ['event_ids']],
  ['delete', '/api/bash/bash_events', []],
  ['get', '/api/bash/bash_events/{event_id}', ['event_id']],
  ['post', '/api/bash/bash_commands/{command_id}/stop', ['command_id']],
  ['get', '/api/git/changes', ['path', 'ref']],
  ['get', '/api/git/diff', ['path', 'ref', 'commit']],
  ['get', '/api/git/commits', ['path', 'limit']],
  ['get', '/api/git/commits/{sha}/changes', ['sha', 'path']],
];
/** The folder picker's routes are not mounted per conversation (as in OpenHands). */
const NOT_PER_CONVERSATION = ['/api/file/home', '/api/file/search_subdirs'];

describe('OpenAPI document (/openapi.json)', () => {
  let server: TestServer;
  let doc: any;

  beforeAll(async () => {
    server = await startServer('embedded');
    doc = (await api(server, 'GET', '/openapi.json')).body;
  });
  afterAll(async () => {
    await server.close();
  });

  const operations = () =>
    Object.entries<any>(doc.paths).flatMap(([path, item]) => Object.entries<any>(item).map(([method, op]) => ({ path, method, op })));

  it('is a valid OpenAPI 3.1 document for swagger-parser (every $ref resolves)', async () => {
    expect(doc.openapi).toBe('3.1.0');
    // validate() dereferences in place: a copy, so the document stays as served.
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeDefined();
  });

  it('lints with 0 errors under Redocly recommended rules', async () => {
    const problems = await redoclyLint(doc);
    const errors = problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message} @ ${p.location[0]?.pointer}`);
    expect(errors).toEqual([]);
    // Warnings allowed: listed so a new one is seen. Today only components used outside HTTP (socket frames, the executor's activity).
    const warnings = problems.filter((p) => p.severity === 'warn').map((p) => `${p.ruleId} @ ${p.location[0]?.pointer}`);
    if (warnings.length) console.log(`redocly warnings:\n${warnings.join('\n')}`);
    expect(warnings.every((w) => w.startsWith('no-unused-components'))).toBe(true);
  }, 120_000);

  it('has no stray $id, no #/definitions refs, and no wildcard path', () => {
    const text = JSON.stringify(doc);
    expect(text).not.toContain('"$id"');
    expect(text).not.toContain('#/definitions/');
    expect(text).not.toContain('#/$defs/');
    for (const path of Object.keys(doc.paths)) {
      // The one documented wildcard: a file under a conversation's working dir.
      if (path !== '/api/conversations/{conversation_id}/workspace/{path}') expect(path).not.toMatch(/\{path\}/);
    }
  });

  it('names every operation uniquely as FastAPI does (as the reference names the routes both serve)', () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z0-9_]+$/);
    const byRoute = Object.fromEntries(operations().map(({ path, method, op }) => [`${method} ${path}`, op.operationId]));
    expect(byRoute).toMatchObject({
      'post /api/conversations': 'start_conversation_api_conversations_post',
      'get /api/conversations/search': 'search_conversations_api_conversations_search_get',
      'get /api/conversations/{conversation_id}': 'get_conversation_api_conversations__conversation_id__get',
      'post /api/conversations/{conversation_id}/events': 'send_message_api_conversations__conversation_id__events_post',
      'get /api/file/download': 'download_file_query_api_file_download_get',
      'post /api/bash/execute_bash_command': 'execute_bash_command_api_bash_execute_bash_command_post',
    });
  });

  it('documents each file, bash and git route, at /api and per conversation, with its parameters', () => {
    for (const [method, path, names] of WORKSPACE) {
      const mounts = NOT_PER_CONVERSATION.includes(path) ? [path] : [path, path.replace(/^\/api/, '/api/conversations/{conversation_id}')];
      for (const mounted of mounts) {
        const op = doc.paths[mounted]?.[method];
        const route = `${method} ${mounted}`;
        expect({ route, documented: Boolean(op) }).toEqual({ route, documented: true });
        const declared = (op.parameters ?? []).map((p: any) => p.name);
        const expected = mounted === path ? names : ['conversation_id', ...names];
        expect({ route, parameters: declared.sort() }).toEqual({ route, parameters: [...expected].sort() });
        for (const p of op.parameters.filter((q: any) => q.in === 'path')) expect(p.required).toBe(true);
        expect(op.security).toEqual([{ 'session-api-key': [] }]);
        expect(op.responses['200']).toBeDefined();
      }
    }
    expect(doc.paths['/api/file/upload'].post.requestBody.content['multipart/form-data'].schema.properties.file).toEqual(expect.objectContaining({ format: 'binary' }));
    expect(doc.paths['/api/bash/start_bash_command'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ExecuteBashRequest' });
    expect(Object.keys(doc.paths['/api/file/download'].get.responses['200'].content)).toEqual(['application/octet-stream']);
  });

  it('declares security on every /api route, none on the public probes', () => {
    for (const { path, method, op } of operations()) {
      const route = `${method} ${path}`;
      if (path.startsWith('/api/')) expect({ route, security: op.security.length }).toEqual({ route, security: 1 });
      else expect({ route, security: op.security }).toEqual({ route, security: [] });
    }
  });

  it('carries examples on the main routes, shaped as the real answers', async () => {
    const json = (path: string, method: string) => doc.paths[path][method];
    expect(json('/api/conversations', 'post').requestBody.content['application/json'].examples.example.value.workspace).toBeDefined();
    expect(json('/api/conversations', 'post').responses['201'].content['application/json'].example.id).toBeDefined();
    expect(json('/api/conversations/search', 'get').responses['200'].content['application/json'].example.items).toHaveLength(1);
    expect(json('/api/conversations/{conversation_id}', 'get').responses['200'].content['application/json'].example.execution_status).toBe('idle');
    expect(json('/api/conversations/{conversation_id}/events', 'post').requestBody.content['application/json'].examples.example.value.role).toBe('user');
    expect(json('/api/settings', 'get').responses['200'].content['application/json'].example.agent_settings).toBeDefined();
    expect(json('/api/settings', 'patch').requestBody.content['application/json'].examples.example.value.agent_settings_diff).toBeDefined();
    expect(json('/api/file/upload', 'post').responses['200'].content['application/json'].example).toEqual({ success: true, file_size: 1024 });
    expect(json('/api/bash/execute_bash_command', 'post').requestBody.content['application/json'].example.command).toBe('ls -la');
    const created = await api(server, 'POST', '/api/conversations', { body: json('/api/conversations', 'post').requestBody.content['application/json'].examples.example.value });
    expect(created.status).toBe(201);
    expect(Object.keys(created.body).sort()).toEqual(Object.keys(json('/api/conversations', 'post').responses['201'].content['application/json'].example).sort());
    const sent = await api(server, 'POST', `/api/conversations/${created.body.id}/events`, { body: { ...json('/api/conversations/{conversation_id}/events', 'post').requestBody.content['application/json'].examples.example.value, run: false } });
    expect(sent.body).toEqual({ success: true });
    const settings = await api(server, 'GET', '/api/settings');
    expect(Object.keys(settings.body).sort()).toEqual(Object.keys(json('/api/settings', 'get').responses['200'].content['application/json'].example).sort());
  });
});
