import { LlmStub } from '@berth/testing';
import { startCluster, TestCluster } from './support/cluster';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlServer, runPytest, scriptFromMessages } from './support/python-sdk';
import { privateDatabase, Storage, STORAGES, startServer, TestServer, testQueuePrefix } from './support/server';

const { referencePython } = require('../scripts/reference-server.js');

const KEY = 'python-sdk-session-key';
const LLM_KEY = 'sk-python-sdk-stub'; // conftest.LLM_API_KEY

/**
 * The OpenHands Python SDK (openhands-sdk / -tools / -workspace 1.58.2 in the reference venv), for
 * real, against a real Berth: test/python-sdk/ (pytest) drives Conversation, RemoteConversation and
 * RemoteWorkspace as SDK users do, with the agent's LLM on the scripted stub. Each storage runs the
 * whole suite once; a failure shows pytest's own report. The suite may restart the gateway (same
 * port, same data) through BERTH_CONTROL_URL.
 */
/** Each storage on the local driver, and the kubernetes driver on FakeKube (the chart's layout: PostgreSQL, pods by IP). */
const VARIANTS: Array<{ storage: Storage; driver: 'local' | 'kubernetes' }> = [...STORAGES.map((storage) => ({ storage, driver: 'local' as const })), { storage: 'postgres', driver: 'kubernetes' }];

describe.each(VARIANTS)('the OpenHands Python SDK against Berth ($storage, $driver driver)', ({ storage, driver }) => {
  const llm = new LlmStub();
  let dataDir: string;
  let cluster: TestCluster | null = null;
  const env: Record<string, string> = { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', BERTH_QUEUE_PREFIX: testQueuePrefix() };
  // The suite uses the default tenant's home sandbox, found by tenant: a database of its own.
  let database: Awaited<ReturnType<typeof privateDatabase>> | null = null;
  let server: TestServer;
  let control: Awaited<ReturnType<typeof controlServer>>;
  let python: string;

  beforeAll(async () => {
    python = referencePython();
    dataDir = mkdtempSync(join(tmpdir(), 'berth-pysdk-data-'));
    if (storage === 'postgres') {
      database = await privateDatabase('pysdk');
      env.DATABASE_URL = database.url;
    }
    if (driver === 'kubernetes') {
      cluster = await startCluster();
      Object.assign(env, cluster.env);
    }
    await llm.start();
    scriptFromMessages(llm);
    server = await startServer(storage, env, dataDir);
    control = await controlServer({
      'restart-gateway': async () => {
        const port = new URL(server.url).port;
        await server.close();
        server = await startServer(storage, env, dataDir, { port: Number(port) });
      },
    });
  }, 180_000);

  afterAll(async () => {
    await control?.close();
    await server?.close();
    await llm.stop();
    await database?.drop();
    await cluster?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('passes test/python-sdk', async () => {
    // PYTEST_ARGS (e.g. "-k reconnect") narrows the run while working on one scenario.
    const args = (process.env.PYTEST_ARGS ?? '').split(' ').filter(Boolean);
    const result = await runPytest(python, { BERTH_URL: server.url, BERTH_API_KEY: KEY, LLM_BASE_URL: llm.url, BERTH_CONTROL_URL: control.url }, args);
    const failed = result.cases.filter((c) => c.outcome !== 'passed');
    if (result.code !== 0 || failed.length > 0 || result.cases.length === 0) {
      const list = failed.map((c) => `  ${c.outcome}: ${c.name}`).join('\n');
      throw new Error(`pytest exited with ${result.code}; ${failed.length} of ${result.cases.length} tests did not pass:\n${list}\n\n${result.output.slice(-30_000)}`);
    }
    // Every LLM call came from Berth's agent loop with the key the SDK gave its LLM.
    expect(llm.requests.length).toBeGreaterThan(args.length ? 0 : 20);
    expect(llm.requests.every((r) => r.headers.authorization === `Bearer ${LLM_KEY}`)).toBe(true);
  }, 240_000);
});
