import { execFile } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { promisify } from 'node:util';
import puppeteer from 'puppeteer-core';
import type { Browser, CDPSession, HTTPRequest, HTTPResponse, Page } from 'puppeteer-core';

/*
 * Agent Canvas (the OpenHands web UI, npm `@openhands/agent-canvas`) in a real headless Chromium,
 * talking to a Berth server directly at another origin ("mode B" of docs: the UI is served by our own
 * static server, its backend is seeded into localStorage, Berth answers CORS for the UI's origin).
 *
 * Needs Debian `chromium` (/usr/bin/chromium, or CHROMIUM_PATH) and network access to the npm registry
 * the first time (the build is cached in <repo>/.cache/agent-canvas/<version>/).
 *
 * The recorded requests, socket frames and console errors say what the UI asked of the server.
 */

const run = promisify(execFile);

/** The pinned Agent Canvas release (1.16.0 pins agent-server 1.44.0; 1.10.0 is the known-good fallback). */
export const AGENT_CANVAS_VERSION = '1.16.0';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function repoRoot(): string {
  for (let dir = process.cwd(); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'berth') return dir;
  }
  throw new Error(`the berth package folder was not found above ${process.cwd()}`);
}

/**
 * The `build/` folder (prebuilt SPA) of the given Agent Canvas release: `npm pack` once into
 * `.cache/agent-canvas/<version>/`, then reused. Concurrent callers race harmlessly (atomic rename).
 */
export async function agentCanvasBuild(version = AGENT_CANVAS_VERSION): Promise<string> {
  const cacheDir = join(repoRoot(), '.cache', 'agent-canvas');
  const target = join(cacheDir, version);
  const build = join(target, 'build');
  if (existsSync(join(build, 'index.html'))) return build;
  mkdirSync(cacheDir, { recursive: true });
  const scratch = mkdtempSync(join(cacheDir, `.tmp-${version}-`));
  try {
    const { stdout } = await run('npm', ['pack', `@openhands/agent-canvas@${version}`, '--pack-destination', scratch, '--json', '--silent'], {
      cwd: scratch,
      maxBuffer: 64 * 1024 * 1024,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; version: string }[];
    if (packed.version !== version) throw new Error(`npm pack returned agent-canvas ${packed.version}, not ${version}`);
    await run('tar', ['xzf', join(scratch, packed.filename), '-C', scratch, 'package/build', 'package/package.json']);
    if (!existsSync(join(scratch, 'package', 'build', 'index.html'))) throw new Error(`agent-canvas ${version} has no build/index.html`);
    rmSync(target, { recursive: true, force: true });
    renameSync(join(scratch, 'package'), target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return build;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `dir` on 127.0.0.1 (a free port). Unknown paths without a file extension get index.html
 * (client-side routes such as /conversations/<id>); a missing asset is a plain 404.
 */
export async function serveStatic(dir: string): Promise<StaticServer> {
  const root = normalize(dir);
  const index = join(root, 'index.html');
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file = normalize(join(root, pathname));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    let found = false;
    try {
      const st = statSync(file);
      if (st.isDirectory()) file = join(file, 'index.html');
      found = existsSync(file);
    } catch {
      found = false;
    }
    if (!found) {
      if (extname(pathname)) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found');
        return;
      }
      file = index;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One HTTP request the page made (CORS preflights are not visible to the page, so not listed). */
export interface RequestRecord {
  t: number;
  method: string;
  url: string;
  resourceType: string;
  requestHeaders: Record<string, string>;
  postData?: string;
  status?: number;
  responseBody?: string;
  failure?: string;
}

export interface SocketRecord {
  t: number;
  url: string;
  status?: number;
  closed?: boolean;
  sent: { t: number; data: string }[];
  received: { t: number; data: string }[];
}

export interface ConsoleRecord {
  t: number;
  type: string;
  text: string;
}

export interface CanvasOptions {
  /** Berth's base URL, e.g. http://127.0.0.1:8000 */
  serverUrl: string;
  apiKey?: string;
  version?: string;
  /** an already running static server for the UI (else one is started and closed with the canvas) */
  uiUrl?: string;
  /** extra localStorage entries (strings), seeded before the app's first script runs */
  localStorage?: Record<string, string>;
  viewport?: { width: number; height: number };
  /** keep response bodies of calls to serverUrl up to this many characters (default 4000; 0 = none) */
  bodyLimit?: number;
}

const BACKEND_ID = 'berth';

/** localStorage that makes the UI use `serverUrl` with `apiKey` and skips onboarding and telemetry. */
export function canvasSeed(serverUrl: string, apiKey = ''): Record<string, string> {
  return {
    'openhands-backends': JSON.stringify([{ id: BACKEND_ID, name: 'Berth', host: serverUrl, apiKey, kind: 'local' }]),
    'openhands-active-backend': JSON.stringify({ backendId: BACKEND_ID, orgId: null }),
    'openhands-onboarded': '1',
    'openhands-telemetry-consent': 'denied',
  };
}

export class Canvas {
  readonly requests: RequestRecord[] = [];
  readonly sockets: SocketRecord[] = [];
  readonly console: ConsoleRecord[] = [];
  readonly pageErrors: ConsoleRecord[] = [];
  private readonly socketsById = new Map<string, SocketRecord>();
  private readonly pending = new Set<Promise<unknown>>();

  private constructor(
    readonly browser: Browser,
    readonly page: Page,
    readonly uiUrl: string,
    readonly serverUrl: string,
    private readonly staticServer: StaticServer | undefined,
    private readonly cdp: CDPSession,
  ) {}

  static async start(options: CanvasOptions): Promise<Canvas> {
    const serverUrl = options.serverUrl.replace(/\/+$/, '');
    let staticServer: StaticServer | undefined;
    let browser: Browser | undefined;
    try {
      if (!options.uiUrl) staticServer = await serveStatic(await agentCanvasBuild(options.version));
      const uiUrl = options.uiUrl ?? staticServer!.url;
      const viewport = options.viewport ?? { width: 1280, height: 800 };
      browser = await puppeteer.launch({
        executablePath: CHROMIUM_PATH,
        headless: true,
        defaultViewport: viewport,
        args: [
          // Nothing but loopback resolves: Google Fonts, PostHog, CDNs and the npm update check fail fast.
          '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-dev-shm-usage',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          `--window-size=${viewport.width},${viewport.height}`,
        ],
      });
      const page = (await browser.pages())[0] ?? (await browser.newPage());
      const cdp = await page.createCDPSession();
      const canvas = new Canvas(browser, page, uiUrl, serverUrl, staticServer, cdp);
      await canvas.record(options.bodyLimit ?? 4000);
      const seed = { ...canvasSeed(serverUrl, options.apiKey), ...(options.localStorage ?? {}) };
      // Once per tab: later reloads keep what the app itself stored.
      await page.evaluateOnNewDocument(
        (origin: string, entries: Record<string, string>) => {
          const g = globalThis as any;
          try {
            if (g.location.origin !== origin || g.sessionStorage.getItem('__berth_seeded__')) return;
            for (const [k, v] of Object.entries(entries)) g.localStorage.setItem(k, v);
            g.sessionStorage.setItem('__berth_seeded__', '1');
          } catch {
            /* about:blank and the like */
          }
        },
        new URL(uiUrl).origin,
        seed,
      );
      return canvas;
    } catch (err) {
      await browser?.close().catch(() => undefined);
      await staticServer?.close();
      throw err;
    }
  }

  private async record(bodyLimit: number): Promise<void> {
    const now = () => Date.now();
    const byRequest = new Map<HTTPRequest, RequestRecord>();
    const isApi = (url: string) => url.startsWith(this.serverUrl);
    this.page.on('request', (r: HTTPRequest) => {
      const rec: RequestRecord = { t: now(), method: r.method(), url: r.url(), resourceType: r.resourceType(), requestHeaders: r.headers() };
      const body = r.postData();
      if (body !== undefined) rec.postData = body;
      byRequest.set(r, rec);
      this.requests.push(rec);
    });
    this.page.on('response', (res: HTTPResponse) => {
      const rec = byRequest.get(res.request());
      if (!rec) return;
      rec.status = res.status();
      if (bodyLimit > 0 && isApi(rec.url) && rec.method !== 'OPTIONS' && !(rec.status >= 300 && rec.status < 400)) {
        const p = res
          .text()
          .then((text) => (rec.responseBody = text.length > bodyLimit ? `${text.slice(0, bodyLimit)}…(${text.length} chars)` : text))
          .catch(() => undefined)
          .finally(() => this.pending.delete(p));
        this.pending.add(p);
      }
    });
    this.page.on('requestfailed', (r: HTTPRequest) => {
      const rec = byRequest.get(r);
      if (rec) rec.failure = r.failure()?.errorText ?? 'failed';
    });
    this.page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') this.console.push({ t: now(), type: m.type(), text: m.text() });
    });
    this.page.on('pageerror', (e) => this.pageErrors.push({ t: now(), type: 'pageerror', text: e instanceof Error ? (e.stack ?? e.message) : String(e) }));

    await this.cdp.send('Network.enable');
    this.cdp.on('Network.webSocketCreated', (e) => {
      const rec: SocketRecord = { t: now(), url: e.url, sent: [], received: [] };
      this.socketsById.set(e.requestId, rec);
      this.sockets.push(rec);
    });
    this.cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
      const rec = this.socketsById.get(e.requestId);
      if (rec) rec.status = e.response.status;
    });
    this.cdp.on('Network.webSocketFrameSent', (e) => this.socketsById.get(e.requestId)?.sent.push({ t: now(), data: e.response.payloadData }));
    this.cdp.on('Network.webSocketFrameReceived', (e) => this.socketsById.get(e.requestId)?.received.push({ t: now(), data: e.response.payloadData }));
    this.cdp.on('Network.webSocketClosed', (e) => {
      const rec = this.socketsById.get(e.requestId);
      if (rec) rec.closed = true;
    });
  }

  /** Opens a UI path (default: the home page). */
  async open(path = '/'): Promise<void> {
    await this.page.goto(new URL(path, this.uiUrl).href, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  }

  /** Calls the page made to Berth, in order. */
  apiCalls(): RequestRecord[] {
    return this.requests.filter((r) => r.url.startsWith(this.serverUrl));
  }

  /** Resolves once every recorded response body has been read. */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /** Resolves once no request has been in flight for `idleMs` (the UI polls /server_info every few seconds). */
  async networkIdle(idleMs = 500, timeoutMs = 15_000): Promise<void> {
    await this.page.waitForNetworkIdle({ idleTime: idleMs, timeout: timeoutMs });
    await this.settled();
  }

  /** Types into the chat box and presses Enter. */
  async sendMessage(text: string, timeoutMs = 15_000): Promise<void> {
    const selector = '[data-testid="chat-input"]';
    await this.page.waitForSelector(selector, { visible: true, timeout: timeoutMs });
    await this.page.click(selector);
    await this.page.type(selector, text);
    await this.page.keyboard.press('Enter');
  }

  /** Resolves when the page's visible text contains `text` (or matches it). */
  async waitForText(text: string | RegExp, timeoutMs = 15_000): Promise<void> {
    const test =
      typeof text === 'string'
        ? `document.body && document.body.innerText.includes(${JSON.stringify(text)})`
        : `document.body && new RegExp(${JSON.stringify(text.source)}, ${JSON.stringify(text.flags)}).test(document.body.innerText)`;
    try {
      await this.page.waitForFunction(test, { timeout: timeoutMs, polling: 200 });
    } catch (err) {
      const shown = (await this.text().catch(() => '')).slice(0, 1500);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${String(text)} on the page; it shows:\n${shown}`, { cause: err });
    }
  }

  /** The page's visible text. */
  text(): Promise<string> {
    return this.page.evaluate('document.body ? document.body.innerText : ""') as Promise<string>;
  }

  async screenshot(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true });
    await this.page.screenshot({ path: path as `${string}.png` });
  }

  async close(): Promise<void> {
    try {
      await this.cdp.detach().catch(() => undefined);
      await this.browser.close();
    } finally {
      await this.staticServer?.close();
    }
  }
}

/** Starts the UI (static server + Chromium) against a Berth at `serverUrl`; close() ends both. */
export function startCanvas(options: CanvasOptions): Promise<Canvas> {
  return Canvas.start(options);
}
