import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKube, LlmStub } from '@berth/testing';
import { api, STORAGES, TestServer, startServer, userMessage } from './support/server';

const KEY = 'kube-test-key';
const NAMESPACE = 'sandboxes';

/** An agent run end to end with BERTH_SANDBOX_DRIVER=kubernetes: the sandbox is a pod of FakeKube, found through KUBECONFIG. */
describe.each(STORAGES)('agent run on the kubernetes driver (%s)', (storage) => {
  const llm = new LlmStub();
  let fake: FakeKube;
  let server: TestServer;
  let dir: string;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-kube-e2e-'));
    // The pods' users (uid 10001) reach the cluster's folders through it.
    chmodSync(dir, 0o711);
    fake = await FakeKube.start({ dataDir: join(dir, 'cluster') });
    fake.writeKubeconfig(join(dir, 'kubeconfig'));
    await llm.start();
    server = await startServer(storage, {
      OH_SESSION_API_KEYS_0: KEY,
      BERTH_ROLE: 'all',
      BERTH_SANDBOX_DRIVER: 'kubernetes',
      BERTH_K8S_EXECUTOR_IMAGE: 'registry.example/berth-executor:1',
      BERTH_K8S_NAMESPACE: NAMESPACE,
      KUBECONFIG: join(dir, 'kubeconfig'),
      BERTH_WARM_POOL_SIZE: '1',
    });
  });
  afterAll(async () => {
    await server?.close();
    await llm.stop();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs a terminal command in the sandbox's pod and finishes", async () => {
    const text = `kube task ${storage}`;
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo from-pod-$((40+2)) $(hostname) && pwd' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'done' } }] },
    ]);
    const res = await call('POST', '/api/conversations', {
      agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: userMessage(text),
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const deadline = Date.now() + 40_000;
    let info;
    do {
      info = (await call('GET', `/api/conversations/${id}`)).body;
      if (Date.now() > deadline) throw new Error(`status stayed ${info.execution_status}: ${JSON.stringify(info).slice(0, 1500)} ${JSON.stringify(fake.objects('pods', NAMESPACE).map((p) => [p.metadata.name, p.metadata.labels, p.status?.phase]))}`);
      await new Promise((r) => setTimeout(r, 50));
    } while (!['finished', 'error'].includes(info.execution_status));
    expect(info.execution_status).toBe('finished');
    const events = (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items as any[];
    const observation = events.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
    const output = observation.observation.content.map((c: { text: string }) => c.text).join('');
    const pod = fake.pods().find((p) => output.includes(p.name));
    expect(pod).toBeDefined();
    expect(output).toContain('from-pod-42');
    expect(output).toContain('/workspace/project');
    expect(fake.object('pods', NAMESPACE, pod!.name)!.metadata.labels['berth.dev/pool']).toBe('claimed');
  });
});
