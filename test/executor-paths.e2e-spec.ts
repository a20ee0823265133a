import { RunningExecutor, startExecutor } from './support/processes';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The built executor against a sandbox that swaps one of its folders for a symlink to a host folder
 * outside the root and back, as fast as it can, while many downloads, uploads, create_directory,
 * git, file-editor and bash calls name paths in that folder: a check of the path followed by an open of
 * the same path once read and wrote outside the sandbox (18 of 3,000 downloads, 47 of 2,000
 * uploads). Nothing outside may ever be read, created or modified.
 */

const TOKEN = 'executor-paths-e2e-token';
const AUTH = { 'x-sandbox-token': TOKEN };
const OUTSIDE_TEXT = 'OUTSIDE-CANARY';

/** A request with the raw target as given (fetch would resolve dot segments before sending). */
function rawRequest(port: number, method: string, target: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...AUTH };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    const req = httpRequest({ host: '127.0.0.1', port, method, path: target, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `count` calls of `call`, `concurrency` at a time. */
async function pool(count: number, concurrency: number, call: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await call(next++);
    }),
  );
}

describe('executor paths: a folder swapped for a symlink between check and use', () => {
  let root: string;
  let outside: string;
  let executor: RunningExecutor;
  const url = (path: string, query: Record<string, string>) => `http://127.0.0.1:${executor.port}${path}?${new URLSearchParams(query)}`;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'berth-paths-')));
    outside = realpathSync(mkdtempSync(join(tmpdir(), 'berth-paths-outside-')));
    executor = await startExecutor(root, TOKEN);
  });

  afterAll(async () => {
    expect(await executor.stop()).toBe(0);
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('never reads, creates or modifies anything outside the root while the swap runs', async () => {
    mkdirSync(join(root, 'd'));
    writeFileSync(join(root, 'd', 'f.txt'), 'inside');
    writeFileSync(join(outside, 'f.txt'), OUTSIDE_TEXT);
    const canary = statSync(join(outside, 'f.txt'));
    // The sandbox's own process: d is a folder, then a symlink to the host folder, then a folder again.
    const swapper = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('fs');
         const [d, real, out] = process.argv.slice(1);
         for (;;) {
           try { fs.renameSync(d, real); fs.symlinkSync(out, d); fs.unlinkSync(d); fs.renameSync(real, d); } catch {}
         }`,
        join(root, 'd'),
        join(root, 'd.real'),
        outside,
      ],
      { stdio: 'ignore' },
    );
    const swapperExited = new Promise((resolve) => swapper.once('exit', resolve));
    const statuses = new Map<string, number>();
    const count = (what: string) => statuses.set(what, (statuses.get(what) ?? 0) + 1);
    const conversation = randomUUID();
    try {
      await pool(2800, 16, async (i) => {
        const kind = i % 7;
        if (kind === 0 || kind === 1) {
          const res = await fetch(url('/api/file/download', { path: join(root, 'd', 'f.txt') }), { headers: AUTH });
          const text = await res.text();
          expect(text).not.toContain(OUTSIDE_TEXT);
          count(`download ${res.status}`);
        } else if (kind === 2) {
          const name = i % 14 === 2 ? 'f.txt' : `new-${i}.txt`;
          const res = await fetch(url('/api/file/upload', { path: join(root, 'd', name) }), {
            method: 'POST',
            headers: { ...AUTH, 'content-type': 'application/octet-stream' },
            body: 'uploaded',
          });
          const text = await res.text();
          count(`upload ${res.status}${res.status >= 500 ? ` ${text}` : ''}`);
        } else if (kind === 3) {
          const res = await fetch(url('/api/file/create_directory', { path: join(root, 'd', `dir-${i}`, 'sub') }), { method: 'POST', headers: AUTH });
          const text = await res.text();
          count(`create_directory ${res.status}${res.status >= 500 ? ` ${text}` : ''}`);
        } else if (kind === 4) {
          const res = await fetch(url('/api/git/diff', { path: join(root, 'd', 'f.txt') }), { headers: AUTH });
          expect(await res.text()).not.toContain(OUTSIDE_TEXT);
          count(`git diff ${res.status}`);
        } else if (kind === 6) {
          // A shell started in the folder: a relative write lands where it started.
          const res = await fetch(url('/api/bash/execute_bash_command', {}), {
            method: 'POST',
            headers: { ...AUTH, 'content-type': 'application/json' },
            body: JSON.stringify({ command: `touch bash-${i}.txt`, cwd: join(root, 'd') }),
          });
          await res.text();
          count(`bash ${res.status}`);
        } else {
          const action = i % 14 === 5 ? { command: 'view', path: join(root, 'd', 'f.txt') } : { command: 'create', path: join(root, 'd', `edited-${i}.txt`), file_text: 'edited' };
          const res = await rawRequest(
            executor.port,
            'POST',
            '/api/tools/execute',
            JSON.stringify({ conversation_id: conversation, working_dir: root, tool: 'file_editor', action }),
          );
          expect(res.text).not.toContain(OUTSIDE_TEXT);
          count(`file_editor ${action.command} ${res.status}`);
        }
      });
    } finally {
      swapper.kill('SIGTERM');
      await swapperExited;
    }
    // The host folder is as it was: its one file unchanged (content and mtime), nothing added.
    expect(readdirSync(outside)).toEqual(['f.txt']);
    expect(readFileSync(join(outside, 'f.txt'), 'utf8')).toBe(OUTSIDE_TEXT);
    expect(statSync(join(outside, 'f.txt')).mtimeMs).toBe(canary.mtimeMs);
    // The calls did run (not all refused): what lands inside the folder is there.
    expect([...statuses.keys()].some((k) => k === 'download 200')).toBe(true);
    expect([...statuses.keys()].some((k) => k === 'upload 200')).toBe(true);
    expect([...statuses.keys()].filter((k) => / 5\d\d\b/.test(k))).toEqual([]);
  }, 120_000);

  it('matches routes on the path as sent: dot segments, encoded or not, and encoded slashes are 404', async () => {
    for (const target of [
      '/api/bash/%2e%2e/tools/execute',
      '/api/bash/%2E%2E/activity',
      '/api/bash/../activity',
      '/api/file/./home',
      '/api/file%2fhome',
      '/api/file%5chome',
      '/api/file/home%00',
      '//api/activity',
      '/api/bash/%2e%2e/sessions/x/close',
    ]) {
      const res = await rawRequest(executor.port, 'GET', target);
      expect([target, res.status, JSON.parse(res.text)]).toEqual([target, 404, { detail: 'Not Found' }]);
    }
    expect((await rawRequest(executor.port, 'GET', '/api/activity')).status).toBe(200);
    expect((await rawRequest(executor.port, 'GET', '/api/bash/bash_events/')).status).not.toBe(404);
  });
});
