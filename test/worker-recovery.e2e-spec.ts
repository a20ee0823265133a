import { projectRoot } from '@berth/config';
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { LlmStub } from '@berth/testing';
import { killProcessesUnder } from './support/processes';
import { api, startServer, TestServer, userMessage } from './support/server';

const KEY = 'recovery-key';

/** A worker process (the built apps/worker), sharing the test's PostgreSQL, Redis and data dir. */
function startWorker(server: TestServer, port: number): ChildProcess {
  return spawn(process.execPath, [join(projectRoot(), 'dist/apps/worker/src/main.js'), '--host', '127.0.0.1', '--port', String(port)], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: server.config.databaseUrl as string,
      REDIS_URL: server.config.redisUrl as string,
      BERTH_QUEUE_PREFIX: server.config.queuePrefix,
      BERTH_DATA_DIR: server.dataDir,
      OH_SECRET_KEY: 'test-secret-key',
      BERTH_RUN_STALL_MS: '1500',
      LOG_LEVEL: 'warn',
    },
    stdio: 'ignore',
  });
}

describe('a worker killed mid-run (PostgreSQL + Redis, workers as child processes)', () => {
  const llm = new LlmStub();
  let server: TestServer;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    await llm.start();
    server = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'gateway', BERTH_RUN_STALL_MS: '1500' });
  });
  afterAll(async () => {
    // SIGTERM: the surviving worker stops the executors it started or took over (none is left behind).
    for (const w of workers) {
      if (w.exitCode !== null || w.signalCode !== null) continue;
      const exited = new Promise((resolve) => w.once('exit', resolve));
      w.kill('SIGTERM');
      await exited;
    }
    killProcessesUnder(server.dataDir);
    await server.close();
    await llm.stop();
  });

  it('is replaced by another worker that finishes the run, losing and doubling nothing', async () => {
    const text = 'survive a crash';
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'sleep 60', timeout: 120 } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'recovered' } }] },
    ]);
    workers.push(startWorker(server, 0));
    const created = await api(server, 'POST', '/api/conversations', {
      key: KEY,
      body: {
        agent: { kind: 'Agent', llm: { model: 'stub', api_key: 'k', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
        workspace: { working_dir: '/workspace/project' },
        initial_message: userMessage(text),
      },
    });
    const id = created.body.id;
    const search = async () => (await api(server, 'GET', `/api/conversations/${id}/events/search?limit=100`, { key: KEY })).body.items as any[];
    let deadline = Date.now() + 30_000;
    while (!(await search()).some((e) => e.kind === 'ActionEvent')) {
      if (Date.now() > deadline) throw new Error('the first worker never started the action');
      await new Promise((r) => setTimeout(r, 100));
    }
    workers[0].kill('SIGKILL');
    workers.push(startWorker(server, 0));

    deadline = Date.now() + 60_000;
    let status = '';
    while (status !== 'finished') {
      if (Date.now() > deadline) throw new Error(`run not finished after the crash (status ${status})`);
      await new Promise((r) => setTimeout(r, 200));
      status = (await api(server, 'GET', `/api/conversations/${id}`, { key: KEY })).body.execution_status;
    }
    const log = await search();
    const ids = log.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const errors = log.filter((e) => e.kind === 'AgentErrorEvent');
    expect(errors.length).toBe(1);
    expect(errors[0].error).toMatch(/restart occurred/);
    expect(errors[0].tool_call_id).toBe(log.find((e) => e.kind === 'ActionEvent').tool_call_id);
    expect(log.filter((e) => e.kind === 'SystemPromptEvent').length).toBe(1);
    expect(log.filter((e) => e.kind === 'ActionEvent').map((e) => e.tool_name)).toEqual(['terminal', 'finish']);
    expect((await api(server, 'GET', `/api/conversations/${id}/agent_final_response`, { key: KEY })).body.response).toBe('recovered');
  });
});
