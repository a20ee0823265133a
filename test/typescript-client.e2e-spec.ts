import { LlmStub, until } from '@berth/testing';
import WebSocket from 'ws';
import { startServer, TestServer } from './support/server';

/*
 * The official OpenHands TypeScript client, as published on npm (@openhands/typescript-client; the
 * registry's newest is pinned in package.json), driving Berth the way its deterministic integration
 * suite drives an agent server: server metadata, LLM and settings metadata, a conversation with a
 * message, its events over REST and over the client's own WebSocket, the final response, and the
 * workspace's command, upload, download and git queries. The client is an ES module; its Node
 * branch opens sockets with require('ws'), which ES modules lack, so it gets `window.WebSocket`.
 */
(globalThis as { window?: unknown }).window ??= { WebSocket };

type Client = typeof import('@openhands/typescript-client');
type ClientParts = typeof import('@openhands/typescript-client/clients');

const KEY = 'ts-client-key';
const WORKDIR = '/workspace/project';

describe('the OpenHands TypeScript client against Berth', () => {
  const llm = new LlmStub();
  let server: TestServer;
  let sdk: Client;
  let parts: ClientParts;
  const opts = () => ({ host: server.url, apiKey: KEY });
  const closers: { close(): unknown }[] = [];
  const track = <T extends { close(): unknown }>(c: T) => (closers.push(c), c);

  beforeAll(async () => {
    sdk = await import('@openhands/typescript-client');
    parts = await import('@openhands/typescript-client/clients');
    await llm.start();
    server = await startServer('postgres', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all' });
  });
  afterAll(async () => {
    for (const c of closers) await c.close();
    await server.close();
    await llm.stop();
  });

  const agent = () =>
    new sdk.Agent({
      llm: { model: 'openai/stub-model', api_key: 'sk-ts-client', base_url: llm.url, num_retries: 0 } as never,
      tools: [{ name: 'terminal' }, { name: 'file_editor' }, { name: 'task_tracker' }],
    });

  it('reads the server, LLM and settings metadata', async () => {
    const serverClient = track(new parts.ServerClient(opts()));
    const llmClient = track(new parts.LLMMetadataClient(opts()));
    const settings = track(new parts.SettingsClient(opts()));

    expect((await serverClient.getAlive()).status).toBe('ok');
    // 1.39's typing still says "OK"; agent server 1.58 (and Berth) answer {"status": "ok"}.
    expect(await serverClient.getHealth()).toEqual({ status: 'ok' });
    expect(['ready', 'initializing']).toContain((await serverClient.getReady()).status);
    const info = await serverClient.getServerInfo();
    expect(typeof info.version).toBe('string');
    expect(Array.isArray(await llmClient.getProviders())).toBe(true);
    expect(Array.isArray(await llmClient.getModels())).toBe(true);
    expect(typeof (await llmClient.getVerifiedModels())).toBe('object');
    expect((await settings.getAgentSchema()).model_name).toBeTruthy();
    expect((await settings.getConversationSchema()).model_name).toBeTruthy();
  });

  it('creates a conversation, runs it, and reads its events over REST and the socket', async () => {
    const text = 'ts-client: compute it';
    llm.script(text, [
      { text: 'Computing.', toolCalls: [{ name: 'terminal', arguments: { command: 'echo ts-$((6*7))' } }] },
      { text: 'It is ts-42.' },
    ]);
    const manager = track(new sdk.ConversationManager(opts()));
    const before = await manager.countConversations();
    const workspace = track(new sdk.Workspace({ host: server.url, apiKey: KEY, workingDir: WORKDIR }));
    const received: { id: string; kind: string }[] = [];
    const conversation = new sdk.Conversation(agent(), workspace, {
      callback: (event: { id: string; kind: string }) => void received.push(event),
    });
    closers.push(conversation);
    await conversation.start();
    await conversation.startWebSocketClient();
    expect(await manager.countConversations()).toBe(before + 1);
    const [batch] = await manager.getConversations([conversation.id]);
    expect(batch?.id).toBe(conversation.id);

    await conversation.sendMessage(text);
    await conversation.run();
    await until(async () => (await manager.getConversation(conversation.id)).execution_status === 'finished', 'the run to finish', 60_000);

    const page = await conversation.state.events.search({ limit: 100, sort_order: 'TIMESTAMP' } as never);
    const kinds = page.items.map((e: { kind: string }) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['SystemPromptEvent', 'MessageEvent', 'ActionEvent', 'ObservationEvent']));
    const observation = page.items.find((e: { kind: string }) => e.kind === 'ObservationEvent') as unknown as {
      observation: { content: { text: string }[] };
    };
    expect(JSON.stringify(observation.observation.content)).toContain('ts-42');
    const first = page.items[0];
    expect((await conversation.state.events.getEventById(first.id)).id).toBe(first.id);
    expect((await conversation.state.events.getEventsById([first.id]))[0]?.id).toBe(first.id);
    expect(await conversation.getAgentFinalResponse()).toBe('It is ts-42.');

    // The client's own socket saw every stored event of the run, each once.
    await until(() => page.items.every((e: { id: string }) => received.some((r) => r.id === e.id)), 'every event on the socket', 15_000);
    const ids = received.filter((r) => r.id).map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('runs commands and moves files and git state through the workspace', async () => {
    const workspace = track(new sdk.Workspace({ host: server.url, apiKey: KEY, workingDir: WORKDIR }));
    const manager = track(new sdk.ConversationManager(opts()));
    // The workspace routes reach the tenant's home sandbox; a conversation makes sure it exists.
    await manager.createConversation(agent(), { workingDir: WORKDIR });

    const result = await workspace.executeCommand('echo from-$((2+3))', WORKDIR);
    expect(result.exit_code).toBe(0);
    expect(result.stdout).toContain('from-5');

    const upload = await workspace.uploadText('uploaded by the ts client', `${WORKDIR}/ts-upload.txt`, 'ts-upload.txt');
    expect(upload.success).toBe(true);
    expect(await workspace.downloadAsText(`${WORKDIR}/ts-upload.txt`)).toBe('uploaded by the ts client');

    const repo = `${WORKDIR}/ts-git`;
    const setup = await workspace.executeCommand(
      [
        `rm -rf ${repo}`,
        `mkdir -p ${repo}`,
        `cd ${repo}`,
        'git init -q',
        'git config user.email tester@example.com',
        'git config user.name tester',
        'printf "line1\\n" > tracked.txt',
        'git add tracked.txt',
        'git commit -qm initial',
        'printf "line2\\n" >> tracked.txt',
      ].join(' && '),
      // Without a cwd the command runs in the tenant's home sandbox, not this conversation's (README "Sandboxes").
      WORKDIR,
    );
    expect(setup.exit_code).toBe(0);
    const changes = await workspace.gitChanges(repo);
    expect(changes.some((c: { path: unknown }) => String(c.path).includes('tracked.txt'))).toBe(true);
    const diff = await workspace.gitDiff(`${repo}/tracked.txt`);
    expect(String(diff.modified ?? diff.diff)).toContain('line2');
  });

  it('surfaces Berth errors as the client HttpError with the status', async () => {
    const manager = track(new sdk.ConversationManager(opts()));
    const missing = await manager.getConversation('00000000-0000-4000-8000-000000000000').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(sdk.HttpError);
    expect((missing as { status: number }).status).toBe(404);
    const wrongKey = track(new sdk.ConversationManager({ host: server.url, apiKey: 'not-the-key' }));
    const denied = await wrongKey.countConversations().catch((e: unknown) => e);
    expect((denied as { status: number }).status).toBe(401);
  });
});
