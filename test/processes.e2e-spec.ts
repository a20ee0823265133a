import { LlmStub } from '@berth/testing';
import { freePort, killProcessesUnder, run, waitFor } from './support/processes';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The real entry points, as `npm start` and the chart run them (built by `pretest`). */
describe('processes', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-proc-'));
  });
  afterEach(() => {
    killProcessesUnder(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts the embedded default with --host/--port, serves, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const proc = run('dist/apps/gateway/src/main.js', ['--host', '127.0.0.1', '--port', String(port)], { BERTH_DATA_DIR: dataDir });
    try {
      await waitFor(`http://127.0.0.1:${port}/ready`);
      expect(await (await fetch(`http://127.0.0.1:${port}/health`)).json()).toEqual({ status: 'ok' });
      const count = await fetch(`http://127.0.0.1:${port}/api/conversations/count`);
      expect(await count.json()).toBe(0);
      expect(proc.output()).toContain(`listening on http://127.0.0.1:${port}`);
    } finally {
      proc.child.kill('SIGTERM');
    }
    expect(await proc.exited).toBe('SIGTERM');
  });

  it('takes HOST/PORT from the environment and keys from OH_SESSION_API_KEYS_0', async () => {
    const port = await freePort();
    const proc = run('dist/apps/gateway/src/main.js', [], { BERTH_DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), OH_SESSION_API_KEYS_0: 'proc-key' });
    try {
      await waitFor(`http://127.0.0.1:${port}/ready`);
      expect((await fetch(`http://127.0.0.1:${port}/api/conversations/count`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${port}/api/conversations/count`, { headers: { 'X-Session-API-Key': 'proc-key' } })).status).toBe(200);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('warns loudly when open and bound beyond loopback, and refuses bad configuration', async () => {
    const port = await freePort();
    const open = run('dist/apps/gateway/src/main.js', ['--host', '0.0.0.0', '--port', String(port)], { BERTH_DATA_DIR: dataDir });
    try {
      await waitFor(`http://127.0.0.1:${port}/health`);
      expect(open.output()).toMatch(/NO API KEY IS CONFIGURED/);
    } finally {
      open.child.kill('SIGTERM');
      await open.exited;
    }
    const bad = run('dist/apps/gateway/src/main.js', ['--port', 'eighty'], { BERTH_DATA_DIR: dataDir });
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/configuration error: invalid port/);
  });

  it('runs the worker against PostgreSQL and Redis with probes on --port', async () => {
    const port = await freePort();
    const proc = run('dist/apps/worker/src/main.js', ['--host', '127.0.0.1', '--port', String(port)], {
      BERTH_DATA_DIR: dataDir,
      DATABASE_URL: process.env.BERTH_TEST_DATABASE_URL as string,
      REDIS_URL: process.env.BERTH_TEST_REDIS_URL as string,
      OH_SECRET_KEY: 'k',
    });
    try {
      const ready = await waitFor(`http://127.0.0.1:${port}/ready`);
      expect(await ready.json()).toEqual({ status: 'ready' });
    } finally {
      proc.child.kill('SIGTERM');
    }
    expect(await proc.exited).toBe('SIGTERM');
  });

  it('starts the executor only with a sandbox token and refuses calls without it', async () => {
    const refused = run('dist/apps/executor/src/main.js', [], {});
    expect(await refused.exited).toBe(2);
    const proc = run('dist/apps/executor/src/main.js', [], { BERTH_SANDBOX_TOKEN: 'sandbox-token', BERTH_SANDBOX_ROOT: dataDir });
    try {
      const deadline = Date.now() + 10_000;
      while (!proc.output().includes('"executor":"ready"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const { port } = JSON.parse(proc.output().split('\n')[0]);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/anything`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${port}/anything`, { headers: { 'x-sandbox-token': 'wrong' } })).status).toBe(401);
    } finally {
      proc.child.kill('SIGTERM');
    }
    expect(await proc.exited).toBe(0);
  });

  it('resumes a run after the embedded default is killed and started again', async () => {
    const llm = new LlmStub();
    await llm.start();
    const text = 'survive kill -9 of the whole server';
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'sleep 60', timeout: 120 } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'resumed' } }] },
    ]);
    const port = await freePort();
    const env = { BERTH_DATA_DIR: dataDir, OH_SESSION_API_KEYS_0: 'k' };
    const headers = { 'X-Session-API-Key': 'k', 'content-type': 'application/json' };
    let proc = run('dist/apps/gateway/src/main.js', ['--port', String(port)], env);
    try {
      await waitFor(`http://127.0.0.1:${port}/ready`);
      const created = await fetch(`http://127.0.0.1:${port}/api/conversations`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'x', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
          workspace: { working_dir: '/workspace/project' },
          initial_message: { role: 'user', content: [{ type: 'text', text }] },
        }),
      });
      const { id } = (await created.json()) as { id: string };
      const events = async () => ((await (await fetch(`http://127.0.0.1:${port}/api/conversations/${id}/events/search?limit=100`, { headers })).json()) as { items: any[] }).items;
      let deadline = Date.now() + 30_000;
      while (!(await events()).some((e: { kind: string }) => e.kind === 'ActionEvent')) {
        if (Date.now() > deadline) throw new Error('the action never started');
        await new Promise((r) => setTimeout(r, 100));
      }
      proc.child.kill('SIGKILL');
      await proc.exited;
      proc = run('dist/apps/gateway/src/main.js', ['--port', String(port)], env);
      await waitFor(`http://127.0.0.1:${port}/ready`);
      deadline = Date.now() + 30_000;
      let status = '';
      while (status !== 'finished') {
        if (Date.now() > deadline) throw new Error(`not finished after the restart (${status})`);
        await new Promise((r) => setTimeout(r, 200));
        status = ((await (await fetch(`http://127.0.0.1:${port}/api/conversations/${id}`, { headers })).json()) as { execution_status: string }).execution_status;
      }
      const log = await events();
      expect(log.filter((e: { kind: string }) => e.kind === 'AgentErrorEvent').map((e: { error: string }) => e.error)).toEqual([
        expect.stringMatching(/restart occurred/),
      ]);
      expect(log.filter((e: { kind: string }) => e.kind === 'ActionEvent').length).toBe(2);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
      await llm.stop();
    }
  });
});
