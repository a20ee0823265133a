import { projectRoot } from '@berth/config';
import { LlmStub } from '@berth/testing';
import { join } from 'node:path';
import { AGENT_CANVAS_VERSION, agentCanvasBuild, Canvas, serveStatic, StaticServer } from './support/canvas';
import { api, startServer, TestServer } from './support/server';

const KEY = 'canvas-session-key';
const LLM_KEY = 'sk-canvas-stub';
const ARTIFACTS = join(projectRoot(), 'test-artifacts');

/**
 * Agent Canvas, the real OpenHands web UI (its published build, pinned), in a real headless
 * Chromium with every name but 127.0.0.1 unresolvable, talking to Berth across origins (CORS): a
 * message typed into the chat becomes a conversation, the scripted LLM's terminal command runs in
 * the sandbox, and the agent's answer is rendered on the page.
 */
describe(`Agent Canvas ${AGENT_CANVAS_VERSION} against Berth, in a browser`, () => {
  const llm = new LlmStub();
  let ui: StaticServer;
  let server: TestServer;
  let canvas: Canvas | undefined;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });

  beforeAll(async () => {
    await llm.start();
    ui = await serveStatic(await agentCanvasBuild());
    // The embedded default, as `npm start` runs it, with the UI's origin allowed explicitly.
    server = await startServer('embedded', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', OH_ALLOW_CORS_ORIGINS_0: ui.url });
    // The LLM as a person would set it up in the UI's settings: a profile, activated.
    const llmConfig = { model: 'openai/stub-model', api_key: LLM_KEY, base_url: llm.url };
    expect((await call('POST', '/api/profiles/stub', { llm: llmConfig })).status).toBe(201);
    expect((await call('POST', '/api/profiles/stub/activate')).status).toBe(200);
  }, 180_000);

  afterAll(async () => {
    await canvas?.close();
    await server?.close();
    await ui?.close();
    await llm.stop();
  });

  it('sends a typed message, runs the agent’s terminal command in the sandbox and shows its answer', async () => {
    llm.fallbackScript((_request, turn) =>
      turn === 0
        ? { text: 'Running it.', toolCalls: [{ name: 'terminal', arguments: { command: 'echo canvas-$((6*7)) > proof.txt && cat proof.txt' } }] }
        : { text: 'The sandbox printed canvas-42.' },
    );
    canvas = await Canvas.start({ serverUrl: server.url, apiKey: KEY, uiUrl: ui.url });
    expect(new URL(canvas.uiUrl).origin).not.toBe(new URL(server.url).origin);
    await canvas.open('/');
    await canvas.sendMessage('Please run the canvas check', 60_000);
    try {
      await canvas.waitForText('The sandbox printed canvas-42.', 90_000);
    } finally {
      await canvas.screenshot(join(ARTIFACTS, 'agent-canvas.png'));
    }

    // Berth saw what the UI sent: one conversation, created by the browser, run to the end.
    const created = canvas.apiCalls().find((r) => r.method === 'POST' && new URL(r.url).pathname === '/api/conversations');
    expect(created?.status).toBe(201);
    const sent = JSON.parse(created!.postData as string);
    expect(sent.agent_settings).toBeDefined();
    expect(sent.secrets_encrypted).toBe(true);
    const id = sent.conversation_id as string;
    const events = (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items as any[];
    const observation = events.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
    expect(observation.observation.content[0].text).toContain('canvas-42');
    // The command ran in the conversation's working dir, under the home the UI was given.
    const home = (await call('GET', '/api/file/home')).body.home as string;
    const info = (await call('GET', `/api/conversations/${id}`)).body;
    expect(info.workspace.working_dir.startsWith(`${home}/`)).toBe(true);
    const proof = await fetch(`${server.url}/api/file/download?path=${encodeURIComponent(`${info.workspace.working_dir}/proof.txt`)}`, { headers: { 'X-Session-API-Key': KEY } });
    expect(await proof.text()).toBe('canvas-42\n');
    expect(info.title).toBe('Please run the canvas check');

    // The LLM got the key the UI sent back as this server's ciphertext, decrypted.
    expect(llm.requests.at(-1)?.headers.authorization).toBe(`Bearer ${LLM_KEY}`);
    // Every call the UI made to Berth was answered without a server error, and nothing it needed was missing.
    const failed = canvas.apiCalls().filter((r) => r.status === undefined || r.status >= 400);
    expect(failed.map((r) => `${r.method} ${r.url} → ${r.status ?? r.failure}`)).toEqual([]);
    expect(canvas.pageErrors).toEqual([]);
  }, 240_000);
});
