import { projectRoot } from '@berth/config';
import { isTitleRequest, LlmStub } from '@berth/testing';
import type { StubRequest } from '@berth/testing';
import { join } from 'node:path';
import { AGENT_CANVAS_VERSION, agentCanvasBuild, agentCanvasRelease, Canvas, serveStatic, StaticServer, versionAtLeast } from './support/canvas';
import { api, startServer, TestServer } from './support/server';

const KEY = 'canvas-session-key';
const LLM_KEY = 'sk-canvas-stub';
const ARTIFACTS = join(projectRoot(), 'test-artifacts');

const HELLO = 'Hello! Can you help me with a little arithmetic?';
const TASK = 'Work out six times seven in the terminal, save it in answer.txt and commit it.';
// Its output (42) is not in its text: seeing 42 on the page means the sandbox ran it.
const COMMAND =
  'echo $((6*7)) > answer.txt && git add answer.txt && git -c user.name="Canvas Agent" -c user.email=agent@berth.invalid commit -q -m "Record the answer" && echo "to be reviewed" > notes.txt && cat answer.txt';
const TITLE = 'A little arithmetic';
const GREETING = 'Hello! Ready when you are.';
const DONE = 'Saved and committed: see answer.txt. I left notes.txt uncommitted.';

/** The chat. */
const CHAT = '[data-testid="chat-scroll-container"]';

/**
 * Uncaught errors of the UI itself, whatever its backend: @monaco-editor/react 4.7.0 (the release
 * pins it) disposes a DiffEditor's text models before the widget when the diff unmounts (here: the
 * uncommitted row closes when the commit row opens), and Monaco 0.55 reports that as an uncaught
 * error (suren-atoyan/monaco-react#647, unfixed in 4.7.0).
 */
const UI_OWN_ERRORS = [/TextModel got disposed before DiffEditorWidget model got reset/];

function lastMessageText(request: StubRequest): { role: string; text: string } {
  const last = request.body.messages.at(-1)!;
  const text =
    typeof last.content === 'string' ? last.content : ((last.content as { type: string; text?: string }[] | null) ?? []).map((c) => c.text ?? '').join('');
  return { role: last.role, text };
}

/**
 * Agent Canvas, the real OpenHands web UI (its published build, pinned), in a real headless
 * Chromium with every name but 127.0.0.1 unresolvable, talking to Berth across origins (CORS),
 * set up as a new user sets it up: the onboarding adds Berth as the backend (URL and API key),
 * picks the agent and the LLM (a custom model on a custom base URL: the scripted LLM) and sends
 * the first message. Then a chat in which the agent runs a terminal command, and the Files,
 * Terminal, Usage, Settings and Commits views each show what really happened in the sandbox.
 * Every call the UI makes to Berth must be answered below 400.
 */
describe(`Agent Canvas ${AGENT_CANVAS_VERSION} against Berth, in a browser, set up through its onboarding`, () => {
  const llm = new LlmStub();
  let ui: StaticServer;
  let server: TestServer;
  let canvas: Canvas | undefined;
  const call = (method: string, path: string, body?: unknown) => api(server, method, path, { body, key: KEY });

  beforeAll(async () => {
    await llm.start();
    llm.fallbackScript((request) => {
      // The conversation's title, which an LLM writes after the first message (as in OpenHands).
      if (isTitleRequest(request)) return { text: TITLE };
      const { role, text } = lastMessageText(request);
      if (role === 'tool') return { text: DONE };
      if (role === 'user' && text.includes('six times seven')) return { text: 'Running it in the terminal.', toolCalls: [{ name: 'terminal', arguments: { command: COMMAND } }] };
      return { text: GREETING };
    });
    // Served as the release's static-server.mjs serves it with --disable-telemetry (no PostHog).
    ui = await serveStatic(await agentCanvasBuild(), { disableTelemetry: true });
    // The embedded default, as `npm start` runs it, with the UI's origin allowed explicitly.
    // Nothing else is set up on the server: the UI does it all.
    server = await startServer('embedded', { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', OH_ALLOW_CORS_ORIGINS_0: ui.url });
  }, 120_000);

  afterAll(async () => {
    await canvas?.close();
    await server?.close();
    await ui?.close();
    await llm.stop();
  });

  it('onboards a new user onto Berth, runs a chat with a terminal command, and shows it in every view', async () => {
    const release = await agentCanvasRelease();
    expect(release.version).toBe(AGENT_CANVAS_VERSION);
    // The release needs Node >= 24 (engines) and a backend at least as new as its compatibility floor.
    expect(versionAtLeast(process.versions.node, release.engines.node!.replace(/^>=\s*/, ''))).toBe(true);
    const serverInfo = (await call('GET', '/server_info')).body;
    expect(versionAtLeast(serverInfo.version, release.compatibility.minimumAgentServer)).toBe(true);

    canvas = await Canvas.start({ serverUrl: server.url, uiUrl: ui.url });
    expect(new URL(canvas.uiUrl).origin).not.toBe(new URL(server.url).origin);
    const c = canvas;
    try {
      await c.open('/');

      // 1. The backend: a friendly name, Berth's URL and its API key.
      await c.waitForText('Add a backend', 60_000);
      await c.fill('Host Name', 'Berth');
      await c.fill('Host', server.url);
      await c.fill('API Key', KEY);
      await c.click('Next');

      // 2. The agent: OpenHands.
      await c.waitForText('Choose your agent', 30_000);
      await c.choose(/^OpenHands The default OpenHands agent/);
      await c.click('Next');

      // 3. The LLM: a custom model behind a custom base URL (the scripted LLM), with its key.
      await c.waitForText('Set up your LLM', 30_000);
      await c.choose('Advanced');
      await c.fill('Custom Model', 'openai/stub-model');
      await c.fill('Base URL', llm.url);
      await c.fill('API Key', LLM_KEY);
      await c.click('Next');

      // 4. The first message starts a conversation.
      await c.waitForText('Say hello', 30_000);
      await c.fill(/^Say hello/, HELLO);
      await c.page.keyboard.press('Enter');
      await c.page.waitForFunction(() => /\/conversations\/[0-9a-f-]{32,36}/.test((globalThis as any).location.pathname), { timeout: 60_000, polling: 200 });
      await c.waitForText(GREETING, 90_000, CHAT);

      // 5. The chat: a message whose answer is a terminal command run in the sandbox.
      await c.fill('What do you want to build?', TASK);
      await c.page.keyboard.press('Enter');
      await c.waitForText(DONE, 90_000, CHAT);
      await c.waitForText('Ran echo $((6*7)) > answer.txt', 20_000, CHAT);
      await c.click('Expand', { within: CHAT });
      await c.waitForText(/^42$/m, 20_000, CHAT);

      const conversationId = new URL(c.page.url()).pathname.split('/').at(-1)!;

      // 6. Files: the file the command wrote, with what it wrote.
      // The panel opens on its first tab, Files (clicking the tab that is open closes the panel).
      await c.click('Show panel');
      // The tree was listed when the conversation opened, before the command ran: refresh it.
      await c.click('Refresh files');
      await c.click('answer.txt');
      const panel = await panelSelector(c);
      await c.waitForText(/^42$/m, 30_000, panel);

      // 7. Terminal: the command and its output, as they streamed in.
      await c.click('Terminal');
      await c.waitForText('echo $((6*7))', 30_000, panel);
      await c.waitForText(/^42\s*$/m, 30_000, panel);

      // 8. Usage: the tokens the scripted LLM reported, summed over the agent's calls (the title, written
      // with the title LLM profile Agent Canvas names, is not the agent's usage, as in OpenHands).
      const calls = llm.requests.filter((r) => r.body.tools?.length).length;
      await c.click('Usage');
      await c.waitForText(new RegExp(`Input\\s+${(100 * calls).toLocaleString('en-US')}\\b`), 30_000, panel);
      await c.waitForText(new RegExp(`Output\\s+${(20 * calls).toLocaleString('en-US')}\\b`), 30_000, panel);

      // 9. Commits: the uncommitted change (notes.txt) with its diff, then the history: the
      // agent's commit and the file it added.
      await c.click('Commits');
      await c.waitForText(/Uncommitted\s+1 file/, 30_000, panel);
      const uncommitted = await c.expand(/Uncommitted/, { within: panel });
      await c.waitForText('notes.txt', 30_000, uncommitted);
      await c.clickText('notes.txt', { within: panel });
      await c.waitForText(/to\s+be\s+reviewed/, 30_000, uncommitted);
      const commit = await c.expand(/Record the answer/, { within: panel, timeoutMs: 30_000 });
      await c.waitForText('answer.txt', 30_000, commit);

      // 10. Settings: the LLM profile the onboarding saved, on Berth.
      await c.click('Settings');
      await c.click('LLM');
      await c.page.waitForFunction(() => (globalThis as any).location.pathname === '/settings/llm', { timeout: 30_000, polling: 200 });
      await c.waitForText('openai/stub-model', 30_000);

      // Berth saw what the UI set up and sent.
      const settings = (await call('GET', '/api/settings')).body;
      expect(settings.agent_settings.llm).toMatchObject({ model: 'openai/stub-model', base_url: llm.url, api_key: '**********' });
      const info = (await call('GET', `/api/conversations/${conversationId}`)).body;
      expect(info.title).toBe(TITLE);
      const events = (await call('GET', `/api/conversations/${conversationId}/events/search?limit=100`)).body.items as any[];
      const observation = events.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
      expect(observation.observation.content[0].text.trim()).toBe('42');
      // The LLM got the key typed into the UI (stored and sent back by the server, decrypted).
      expect(llm.requests.at(-1)?.headers.authorization).toBe(`Bearer ${LLM_KEY}`);
      // The terminal's output reached the page over the conversation's socket, live.
      const live = c.sockets.filter((s) => s.status === 101 && s.received.some((f) => f.data.includes('"TerminalObservation"')));
      expect(live.length).toBeGreaterThan(0);

      // Every call the UI made to Berth was answered below 400, and every socket opened.
      await c.settled();
      expect(c.failureReport()).toBe('');
      expect(c.pageErrors.filter((e) => !UI_OWN_ERRORS.some((known) => known.test(e.text)))).toEqual([]);
    } finally {
      // Where it ended, pass or fail: agent-canvas.png (the page), .html (its DOM), .json (every
      // call to Berth with its answer, the socket frames, console errors).
      await c.saveArtifacts(join(ARTIFACTS, 'agent-canvas'));
    }
  }, 170_000);
});

/** A selector for the right-hand panel: the closest block holding both its tab bar and its content. */
async function panelSelector(c: Canvas): Promise<string> {
  const marked = await c.page.evaluate(() => {
    const doc = (globalThis as any).document;
    const tab = [...doc.querySelectorAll('button')].find((b: any) => b.innerText.trim() === 'Files' && b.getClientRects().length);
    let el: any = tab;
    // Up from the tab until the block also holds the view under the tabs.
    while (el && !(el.innerText ?? '').includes('answer.txt')) el = el.parentElement;
    if (!el) return false;
    el.setAttribute('data-berth-test-panel', '');
    return true;
  });
  if (!marked) throw new Error('the right-hand panel was not found');
  return '[data-berth-test-panel]';
}
