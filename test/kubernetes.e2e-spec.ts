import { FakeKube, LlmStub, until } from '@berth/testing';
import { startCluster, TestCluster } from './support/cluster';
import { api, STORAGES, startServer, TestServer, userMessage, testQueuePrefix } from './support/server';

const KEY = 'kubernetes-e2e-key';
const NAMESPACE = 'berth-sandboxes';
const SANDBOX_LABEL = 'berth.dev/sandbox';

/**
 * Berth on the kubernetes sandbox driver, end to end, against FakeKube (the Kubernetes API stand-in
 * of libs/testing, whose kubelet runs each pod's executor as a jailed local process): two replicas
 * on one PostgreSQL and Redis, as the chart runs them. A conversation's agent runs its commands in
 * the pod; the other replica reaches the same pod by its IP; pause deletes the pod and keeps the
 * workspace; delete removes everything of the sandbox.
 */
describe('Berth on the kubernetes driver (FakeKube, two replicas)', () => {
  const llm = new LlmStub();
  let cluster: TestCluster;
  let fake: FakeKube;
  let a: TestServer;
  let b: TestServer;
  const call = (server: TestServer, method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });

  beforeAll(async () => {
    cluster = await startCluster(NAMESPACE);
    fake = cluster.fake;
    await llm.start();
    // One queue for both: either replica's worker may take a run.
    const env = { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', BERTH_QUEUE_PREFIX: testQueuePrefix(), ...cluster.env };
    a = await startServer('postgres', env);
    b = await startServer('postgres', env);
  }, 120_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await llm.stop();
    await cluster?.close();
  });

  const podsOf = (sandboxId: string) => fake.objects('pods', NAMESPACE).filter((p) => p.metadata.labels?.[SANDBOX_LABEL] === sandboxId);
  const objectsOf = (sandboxId: string) =>
    ['pods', 'secrets', 'persistentvolumeclaims', 'networkpolicies'].flatMap((kind) =>
      fake.objects(kind, NAMESPACE).filter((o) => o.metadata.labels?.[SANDBOX_LABEL] === sandboxId).map((o) => `${kind}/${o.metadata.name}`),
    );
  const waitStatus = async (id: string, statuses: string[]) => {
    let info: any;
    await until(async () => {
      info = (await call(a, 'GET', `/api/conversations/${id}`)).body;
      return statuses.includes(info.execution_status);
    }, `execution status ${statuses.join('|')}`, 60_000);
    return info;
  };
  const bash = async (server: TestServer, sandboxId: string, command: string) => {
    const res = await call(server, 'POST', `/sandboxes/${sandboxId}/api/bash/execute_bash_command`, { command, timeout: 20 });
    expect(res.status).toBe(200);
    return res.body as { stdout: string; exit_code: number };
  };

  it("runs an agent's commands in a hardened pod that every replica reaches; pause keeps its workspace, delete removes it all", async () => {
    const text = 'write the answer in the pod';
    llm.script(text, [
      { toolCalls: [{ name: 'terminal', arguments: { command: 'echo answer-$((40+2)) > answer.txt && pwd && id -u && cat answer.txt' } }] },
      { toolCalls: [{ name: 'finish', arguments: { message: 'Written.' } }] },
    ]);
    const created = await call(a, 'POST', '/api/conversations', {
      agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: userMessage(text),
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const info = await waitStatus(id, ['finished', 'error']);
    expect(info.execution_status).toBe('finished');
    const sandboxId = info.sandbox_id as string;

    // The command ran in the pod: its working dir under the pod's /workspace volume, as the executor's uid.
    const log = (await call(a, 'GET', `/api/conversations/${id}/events/search?limit=100`)).body.items as any[];
    const observation = log.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
    const output = observation.observation.content.map((c: any) => c.text).join('');
    expect(output).toContain('answer-42');
    expect(output).toContain('/workspace/project');
    expect(output).toMatch(/\b10001\b/);

    // One pod for the sandbox, labelled with its tenant, with its Secret, workspace claim and NetworkPolicy.
    const [pod] = podsOf(sandboxId);
    expect(podsOf(sandboxId)).toHaveLength(1);
    expect(pod.metadata.labels['berth.dev/tenant']).toBeTruthy();
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(objectsOf(sandboxId).map((o) => o.split('/')[0]).sort()).toEqual(['networkpolicies', 'persistentvolumeclaims', 'pods', 'secrets']);

    // The other replica reaches the same pod (by its IP, from the stored handle), and sees the agent's file.
    expect((await bash(b, sandboxId, 'cat /workspace/project/answer.txt')).stdout.trim()).toBe('answer-42');

    // Pause: the pod goes, the workspace claim stays; resume makes a new pod on it.
    expect((await call(b, 'POST', `/api/sandboxes/${sandboxId}/pause`)).status).toBe(200);
    await until(() => podsOf(sandboxId).length === 0, 'the pod to go');
    expect(objectsOf(sandboxId).some((o) => o.startsWith('persistentvolumeclaims/'))).toBe(true);
    expect((await call(a, 'GET', `/api/sandboxes/${sandboxId}`)).body.status).toBe('paused');
    expect((await call(a, 'POST', `/api/sandboxes/${sandboxId}/resume`)).status).toBe(200);
    expect(podsOf(sandboxId)).toHaveLength(1);
    expect(podsOf(sandboxId)[0].metadata.uid).not.toBe(pod.metadata.uid);
    expect((await bash(a, sandboxId, 'cat /workspace/project/answer.txt')).stdout.trim()).toBe('answer-42');

    // Delete: pod, Secret, claim and NetworkPolicy all go.
    expect((await call(a, 'DELETE', `/api/conversations/${id}`)).status).toBe(200);
    expect([200, 204, 404]).toContain((await call(b, 'DELETE', `/api/sandboxes/${sandboxId}`)).status);
    await until(() => objectsOf(sandboxId).length === 0, "the sandbox's objects to go");
  }, 120_000);
});

/** One replica per storage, its sandbox a claimed warm pod of FakeKube, found through KUBECONFIG. */
describe.each(STORAGES)('an agent run on the kubernetes driver from the warm pool (%s)', (storage) => {
  const llm = new LlmStub();
  let cluster: TestCluster;
  let fake: FakeKube;
  let server: TestServer;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });

  beforeAll(async () => {
    cluster = await startCluster(NAMESPACE, { BERTH_WARM_POOL_SIZE: '1' });
    fake = cluster.fake;
    await llm.start();
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', ...cluster.env });
  });
  afterAll(async () => {
    await server?.close();
    await llm.stop();
    await cluster?.close();
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
