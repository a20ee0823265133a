import { execFile } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { promisify } from 'node:util';
import puppeteer from 'puppeteer-core';
import type { Browser, CDPSession, ElementHandle, HTTPRequest, HTTPResponse, Page } from 'puppeteer-core';

/*
 * Agent Canvas (the OpenHands web UI, npm `@openhands/agent-canvas`) in a real headless Chromium,
 * talking to a Berth server directly at another origin: the UI is served by our own static server
 * (as the package's scripts/static-server.mjs serves it, without its proxy routes), and a person
 * adds Berth as the backend through the UI's own onboarding; Berth answers CORS for the UI's origin.
 *
 * Needs Debian `chromium` (/usr/bin/chromium, or CHROMIUM_PATH) and the npm registry the first time
 * (the build is cached in <repo>/.cache/agent-canvas/<version>/, and the npm packages the build loads
 * from jsDelivr at run time, Monaco for the diff views, in <repo>/.cache/cdn-npm/). No other name
 * than 127.0.0.1 resolves in the browser.
 *
 * The recorded requests (with response bodies), socket frames and console errors say what the UI
 * asked of the server and what it was answered.
 */

const run = promisify(execFile);

/**
 * The pinned Agent Canvas release. 1.20.0 needs Node >= 24 to build or run its own launcher; its
 * package.json depends on @openhands/typescript-client 1.49.1, which the npm registry does not
 * have, so it cannot be installed: the prebuilt `build/` folder (a static SPA) is what we serve.
 */
export const AGENT_CANVAS_VERSION = '1.20.0';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function repoRoot(): string {
  for (let dir = process.cwd(); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'berth') return dir;
  }
  throw new Error(`the berth package folder was not found above ${process.cwd()}`);
}

function cachedRelease(version: string): string {
  return join(repoRoot(), '.cache', 'agent-canvas', version);
}

/**
 * The `build/` folder (prebuilt SPA) of the given Agent Canvas release: `npm pack` once into
 * `.cache/agent-canvas/<version>/` (with its package.json and config/defaults.json), then reused.
 * Concurrent callers race harmlessly (atomic rename).
 */
export async function agentCanvasBuild(version = AGENT_CANVAS_VERSION): Promise<string> {
  const target = cachedRelease(version);
  const cacheDir = dirname(target);
  const build = join(target, 'build');
  if (existsSync(join(build, 'index.html')) && existsSync(join(target, 'config', 'defaults.json'))) return build;
  mkdirSync(cacheDir, { recursive: true });
  const scratch = mkdtempSync(join(cacheDir, `.tmp-${version}-`));
  try {
    const { stdout } = await run('npm', ['pack', `@openhands/agent-canvas@${version}`, '--pack-destination', scratch, '--json', '--silent'], {
      cwd: scratch,
      maxBuffer: 64 * 1024 * 1024,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; version: string }[];
    if (packed.version !== version) throw new Error(`npm pack returned agent-canvas ${packed.version}, not ${version}`);
    await run('tar', ['xzf', join(scratch, packed.filename), '-C', scratch, 'package/build', 'package/package.json', 'package/config']);
    if (!existsSync(join(scratch, 'package', 'build', 'index.html'))) throw new Error(`agent-canvas ${version} has no build/index.html`);
    rmSync(target, { recursive: true, force: true });
    renameSync(join(scratch, 'package'), target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return build;
}

/** What the release's package.json and config/defaults.json (its single source of version pins) say. */
export interface AgentCanvasRelease {
  version: string;
  /** package.json `engines.node`, e.g. ">=24" */
  engines: { node?: string };
  /** config/defaults.json: `versions.agentServer` is the agent server its launcher installs */
  versions: { agentServer: string; agentCanvas: string };
  /** config/defaults.json: the UI refuses a backend whose /server_info version is older */
  compatibility: { minimumAgentServer: string };
}

export async function agentCanvasRelease(version = AGENT_CANVAS_VERSION): Promise<AgentCanvasRelease> {
  await agentCanvasBuild(version);
  const dir = cachedRelease(version);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const defaults = JSON.parse(readFileSync(join(dir, 'config', 'defaults.json'), 'utf8'));
  return { version: pkg.version, engines: pkg.engines ?? {}, versions: defaults.versions, compatibility: defaults.compatibility };
}

/** a <= b for dotted numeric versions ("1.28.0" <= "1.43.1") */
export function versionAtLeast(actual: string, minimum: string): boolean {
  const a = actual.split(/[.+-]/).map((n) => Number.parseInt(n, 10) || 0);
  const m = minimum.split(/[.+-]/).map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(a.length, m.length); i++) {
    if ((a[i] ?? 0) !== (m[i] ?? 0)) return (a[i] ?? 0) > (m[i] ?? 0);
  }
  return true;
}

/** An npm package the build loads from jsDelivr's npm CDN at run time (Monaco, for the diff views). */
export interface CdnPackage {
  name: string;
  version: string;
}

const JSDELIVR_NPM = 'https://cdn.jsdelivr.net/npm/';

/** The `https://cdn.jsdelivr.net/npm/<name>@<version>/…` packages the build's scripts name. */
export function cdnPackages(buildDir: string): CdnPackage[] {
  const found = new Map<string, CdnPackage>();
  const assets = join(buildDir, 'assets');
  for (const file of existsSync(assets) ? readdirSync(assets) : []) {
    if (!file.endsWith('.js')) continue;
    for (const m of readFileSync(join(assets, file), 'utf8').matchAll(/cdn\.jsdelivr\.net\/npm\/((?:@[a-z0-9._-]+\/)?[a-z0-9._-]+)@(\d+\.\d+\.\d+[a-z0-9.-]*)\//gi)) {
      found.set(`${m[1]}@${m[2]}`, { name: m[1], version: m[2] });
    }
  }
  return [...found.values()];
}

/** The unpacked npm package (what jsDelivr serves under /npm/<name>@<version>/), `npm pack`ed once into .cache/cdn-npm/. */
export async function cdnPackageDir(pkg: CdnPackage): Promise<string> {
  const cacheDir = join(repoRoot(), '.cache', 'cdn-npm');
  const target = join(cacheDir, `${pkg.name.replace('/', '+')}@${pkg.version}`);
  if (existsSync(join(target, 'package.json'))) return target;
  mkdirSync(cacheDir, { recursive: true });
  const scratch = mkdtempSync(join(cacheDir, '.tmp-'));
  try {
    const { stdout } = await run('npm', ['pack', `${pkg.name}@${pkg.version}`, '--pack-destination', scratch, '--json', '--silent'], { cwd: scratch, maxBuffer: 64 * 1024 * 1024 });
    const [packed] = JSON.parse(stdout) as { filename: string; version: string }[];
    if (packed.version !== pkg.version) throw new Error(`npm pack returned ${pkg.name} ${packed.version}, not ${pkg.version}`);
    await run('tar', ['xzf', join(scratch, packed.filename), '-C', scratch]);
    rmSync(target, { recursive: true, force: true });
    renameSync(join(scratch, 'package'), target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return target;
}

/** As scripts/static-server.mjs: a path ending in one of these is an asset (404 when missing), not an SPA route. */
const ASSET_LIKE_EXTENSIONS = new Set([
  '.br', '.css', '.gif', '.gz', '.html', '.htm', '.ico', '.jpeg', '.jpg', '.js', '.json', '.map', '.mjs', '.mp3',
  '.png', '.svg', '.ttf', '.txt', '.wav', '.webmanifest', '.webp', '.woff', '.woff2', '.xml',
]);

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'application/javascript; charset=utf-8',
  '.mjs': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

export interface StaticOptions {
  /**
   * Inject `window.__AGENT_CANVAS_DO_NOT_TRACK__ = true` into index.html, as the release's
   * static-server.mjs does for `--disable-telemetry` / AGENT_CANVAS_DISABLE_TELEMETRY=1.
   */
  disableTelemetry?: boolean;
}

/**
 * Serves `dir` on 127.0.0.1 (a free port) the way the release's scripts/static-server.mjs serves
 * its build when it has no proxy routes: files as they are (`/assets/*` immutable), index.html for
 * any other GET/HEAD path that does not look like an asset (client-side routes such as
 * /conversations/<id>), 404 for a missing asset, and the launcher's runtime config injected into
 * index.html before `</head>`.
 */
export async function serveStatic(dir: string, options: StaticOptions = {}): Promise<StaticServer> {
  const root = normalize(dir);
  const index = join(root, 'index.html');
  const injected = options.disableTelemetry ? '<script>(function(){window.__AGENT_CANVAS_DO_NOT_TRACK__=true;}());</script>' : '';
  const indexHtml = () => {
    const html = readFileSync(index, 'utf8');
    return Buffer.from(injected ? html.replace('</head>', `${injected}\n</head>`) : html, 'utf8');
  };
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
      if (statSync(file).isDirectory()) file = join(file, 'index.html');
      found = existsSync(file);
    } catch {
      found = false;
    }
    if (!found && ASSET_LIKE_EXTENSIONS.has(extname(pathname).toLowerCase())) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found');
      return;
    }
    if (!found || file === index) {
      const body = indexHtml();
      res.writeHead(200, { 'content-type': CONTENT_TYPES['.html'], 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
      'cache-control': pathname.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
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
  error?: string;
  sent: { t: number; data: string }[];
  received: { t: number; data: string }[];
}

export interface ConsoleRecord {
  t: number;
  type: string;
  text: string;
}

export interface CanvasOptions {
  /** Berth's base URL, e.g. http://127.0.0.1:8000 (the calls recorded as API calls are those under it) */
  serverUrl: string;
  version?: string;
  /** an already running static server for the UI (else one is started and closed with the canvas) */
  uiUrl?: string;
  viewport?: { width: number; height: number };
  /** keep response bodies of calls to serverUrl up to this many characters (default 4000; 0 = none) */
  bodyLimit?: number;
  /**
   * npm packages to answer `https://cdn.jsdelivr.net/npm/<name>@<version>/…` with, from the
   * registry's tarball (the same files the CDN serves); default: those the build names. Nothing
   * else outside 127.0.0.1 resolves.
   */
  cdn?: CdnPackage[];
}

/** Where to look: a CSS selector, or an element already found. */
export type Within = string | ElementHandle;

/** How a control or field is named to a person: its label, aria-label, text, title or placeholder. */
export type Name = string | RegExp;

interface NameArg {
  source: string;
  flags: string;
  exact?: string;
}

const toNameArg = (name: Name): NameArg => (typeof name === 'string' ? { source: '', flags: '', exact: name } : { source: name.source, flags: name.flags });

/**
 * Finds, in the page, the one element of `kind` ('control': buttons, links, tabs, radios…;
 * 'field': inputs, text areas, editable boxes) that a person sees under `name`: it is rendered,
 * and the middle of it is in the viewport and not covered by anything else (so slides of a
 * carousel that are out of view, hidden duplicates made for measuring, and things under a dialog
 * do not count). Runs inside the page (serialized by puppeteer): keep it self-contained.
 */
function findNamed(kind: 'control' | 'field', name: NameArg, withinSelector: string | null): unknown {
  const doc = (globalThis as any).document;
  const win = globalThis as any;
  const norm = (s: string | null | undefined) => (s ?? '').replace(/\s+/g, ' ').trim();
  const matches = (s: string | null | undefined) => {
    const t = norm(s);
    if (!t) return false;
    return name.exact !== undefined ? t === name.exact : new RegExp(name.source, name.flags).test(t);
  };
  const seen = (el: any) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return false;
    const style = win.getComputedStyle(el);
    if (style.visibility === 'hidden' || Number(style.opacity) === 0) return false;
    const x = Math.min(Math.max(r.left + r.width / 2, 0), win.innerWidth - 1);
    const y = Math.min(Math.max(r.top + r.height / 2, 0), win.innerHeight - 1);
    if (r.right < 0 || r.bottom < 0 || r.left > win.innerWidth || r.top > win.innerHeight) return false;
    const hit = doc.elementFromPoint(x, y);
    return !!hit && (hit === el || el.contains(hit));
  };
  const labelNames = (el: any): string[] => {
    const out: string[] = [];
    for (const l of el.labels ?? []) {
      out.push(l.innerText, (l.innerText ?? '').split('\n')[0]);
    }
    const by = el.getAttribute('aria-labelledby');
    if (by) out.push(by.split(/\s+/).map((id: string) => doc.getElementById(id)?.innerText ?? '').join(' '));
    return out;
  };
  const root = withinSelector ? doc.querySelector(withinSelector) : doc;
  if (!root) return null;
  const candidates: any[] = [];
  if (kind === 'control') {
    const sel = 'button, a[href], [role=button], [role=tab], [role=radio], [role=link], [role=menuitem], [role=option], [role=checkbox], [role=switch]';
    for (const el of root.querySelectorAll(sel)) {
      if (el.disabled || el.getAttribute('aria-disabled') === 'true') continue;
      const names = [el.getAttribute('aria-label'), ...labelNames(el), el.innerText, el.getAttribute('title')];
      if (names.some(matches) && seen(el)) candidates.push(el);
    }
  } else {
    const sel = 'input:not([type=hidden]):not([type=checkbox]):not([type=radio]), textarea, [contenteditable=true], [role=textbox], [role=combobox]';
    const fields: any[] = [...root.querySelectorAll(sel)];
    for (const el of fields) {
      const names = [el.getAttribute('aria-label'), ...labelNames(el), el.getAttribute('placeholder'), el.getAttribute('data-placeholder')];
      if (names.some(matches) && seen(el)) candidates.push(el);
    }
    // A <label> that only sits next to its field (no for=, not wrapping it): the one field of
    // the smallest enclosing block.
    if (!candidates.length) {
      for (const l of root.querySelectorAll('label')) {
        if (!matches(l.innerText) && !matches((l.innerText ?? '').split('\n')[0])) continue;
        if (!seen(l)) continue;
        let box = l.parentElement;
        for (let depth = 0; box && depth < 4; depth++, box = box.parentElement) {
          const inBox = fields.filter((f) => box.contains(f) && seen(f));
          if (inBox.length === 1) {
            candidates.push(inBox[0]);
            break;
          }
          if (inBox.length > 1) break;
        }
      }
    }
  }
  // Nested matches (a button inside a link of the same name): the innermost one.
  const innermost = candidates.filter((el) => !candidates.some((other) => other !== el && el.contains(other)));
  return innermost.length === 1 ? innermost[0] : null;
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
      if (!options.uiUrl) staticServer = await serveStatic(await agentCanvasBuild(options.version), { disableTelemetry: true });
      const uiUrl = options.uiUrl ?? staticServer!.url;
      const viewport = options.viewport ?? { width: 1600, height: 1000 };
      browser = await puppeteer.launch({
        executablePath: CHROMIUM_PATH,
        headless: true,
        defaultViewport: viewport,
        // A fresh profile each time: the UI starts as it does for a new user (no backend, not onboarded).
        args: [
          // Nothing but loopback resolves: Google Fonts, PostHog, icon CDNs and the npm update check fail
          // fast (jsDelivr's npm URLs of `cdn` are answered before any lookup, see mirrorCdn).
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
      const cdn = options.cdn ?? cdnPackages(await agentCanvasBuild(options.version));
      await canvas.mirrorCdn(new Map(await Promise.all(cdn.map(async (p) => [`${p.name}@${p.version}`, await cdnPackageDir(p)] as const))));
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
    this.cdp.on('Network.webSocketFrameError', (e) => {
      const rec = this.socketsById.get(e.requestId);
      if (rec) rec.error = e.errorMessage;
    });
    this.cdp.on('Network.webSocketClosed', (e) => {
      const rec = this.socketsById.get(e.requestId);
      if (rec) rec.closed = true;
    });
  }

  /** Answers jsDelivr npm URLs of the given packages from their unpacked copies (404 for anything else there). */
  private async mirrorCdn(packages: Map<string, string>): Promise<void> {
    if (!packages.size) return;
    await this.cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${JSDELIVR_NPM}*`, requestStage: 'Request' }] });
    this.cdp.on('Fetch.requestPaused', (e) => {
      const rest = decodeURIComponent(new URL(e.request.url).pathname.slice('/npm/'.length));
      const at = rest.indexOf('@', rest.startsWith('@') ? 1 : 0);
      const slash = rest.indexOf('/', at);
      const dir = at > 0 && slash > at ? packages.get(rest.slice(0, slash)) : undefined;
      const file = dir ? normalize(join(dir, rest.slice(slash + 1))) : undefined;
      const headers = [{ name: 'access-control-allow-origin', value: '*' }];
      if (!dir || !file || !file.startsWith(dir + sep) || !existsSync(file) || statSync(file).isDirectory()) {
        void this.cdp.send('Fetch.fulfillRequest', { requestId: e.requestId, responseCode: 404, responseHeaders: headers, body: '' }).catch(() => undefined);
        return;
      }
      headers.push({ name: 'content-type', value: CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream' });
      void this.cdp
        .send('Fetch.fulfillRequest', { requestId: e.requestId, responseCode: 200, responseHeaders: headers, body: readFileSync(file).toString('base64') })
        .catch(() => undefined);
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

  /** Calls to Berth answered >= 400, or that failed without an answer (aborted by the page or not). */
  failedApiCalls(): RequestRecord[] {
    return this.apiCalls().filter((r) => (r.status !== undefined && r.status >= 400) || (r.status === undefined && r.failure !== undefined));
  }

  /** Sockets to Berth whose handshake was not a 101, or that saw a frame error. */
  failedSockets(): SocketRecord[] {
    const ws = this.serverUrl.replace(/^http/, 'ws');
    return this.sockets.filter((s) => s.url.startsWith(ws) && ((s.status !== undefined && s.status !== 101) || s.error !== undefined));
  }

  /** "METHOD /path?query → status body" for a report. */
  describe(r: RequestRecord, bodyChars = 300): string {
    const u = new URL(r.url);
    const answer = r.status !== undefined ? String(r.status) : `failed (${r.failure})`;
    const body = r.responseBody ? ` ${r.responseBody.slice(0, bodyChars)}` : '';
    return `${r.method} ${u.pathname}${u.search} → ${answer}${body}`;
  }

  /** Every failed call and socket so far, one a line ('' when none). */
  failureReport(): string {
    return [
      ...this.failedApiCalls().map((r) => this.describe(r)),
      ...this.failedSockets().map((s) => `WebSocket ${new URL(s.url).pathname} → ${s.status ?? ''} ${s.error ?? ''}`),
    ].join('\n');
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

  private async failure(what: string, timeoutMs: number, err: unknown): Promise<Error> {
    const shown = (await this.text().catch(() => '')).slice(0, 2000);
    const failed = this.failureReport();
    return new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}; the page shows:\n${shown}` + (failed ? `\n-- calls to Berth that failed so far:\n${failed}` : ''),
      { cause: err },
    );
  }

  private async waitForNamed(kind: 'control' | 'field', name: Name, timeoutMs: number, within?: string): Promise<ElementHandle> {
    try {
      const handle = await this.page.waitForFunction(findNamed, { timeout: timeoutMs, polling: 200 }, kind, toNameArg(name), within ?? null);
      return handle.asElement() as ElementHandle;
    } catch (err) {
      throw await this.failure(`the ${kind === 'control' ? 'control' : 'field'} named ${String(name)}${within ? ` in ${within}` : ''}`, timeoutMs, err);
    }
  }

  /** Waits until `el` stops moving (slides and drawers animate in), so a click lands where it is. */
  private async settledBox(el: ElementHandle, timeoutMs: number): Promise<void> {
    const box = () => el.evaluate((e: any) => JSON.stringify(e.getBoundingClientRect()));
    const until = Date.now() + timeoutMs;
    let last = await box();
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 120));
      const now = await box();
      if (now === last) return;
      last = now;
    }
  }

  /** Clicks the one visible button, link, tab or radio that a person would call `name`. */
  async click(name: Name, options: { timeoutMs?: number; within?: string } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    const el = await this.waitForNamed('control', name, timeoutMs, options.within);
    await this.settledBox(el, timeoutMs);
    await el.click();
    await el.dispose();
  }

  /**
   * Picks the tab, radio or toggle named `name`: clicks it until it says it is the chosen one
   * (aria-selected, aria-checked or aria-pressed "true"); one already chosen is left as it is.
   */
  async choose(name: Name, options: { timeoutMs?: number; within?: string } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    const until = Date.now() + timeoutMs;
    const chosen = (e: any) => ['aria-selected', 'aria-checked', 'aria-pressed'].some((a) => e.getAttribute(a) === 'true');
    for (;;) {
      const el = await this.waitForNamed('control', name, Math.max(until - Date.now(), 1000), options.within);
      if (await el.evaluate(chosen)) return void (await el.dispose());
      await this.settledBox(el, timeoutMs);
      await el.click();
      const ok = await this.page
        .waitForFunction(chosen, { timeout: 2_000, polling: 100 }, el)
        .then(() => true)
        .catch(() => false);
      await el.dispose();
      if (ok) return;
      if (Date.now() > until) throw await this.failure(`${String(name)} to be chosen`, timeoutMs, new Error('never chosen'));
    }
  }

  /**
   * Clicks the innermost visible element whose own text is `text` (or matches it): for what a
   * person clicks that is no button, such as a file's row in a list.
   */
  async clickText(text: Name, options: { timeoutMs?: number; within?: string } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    let handle;
    try {
      handle = await this.page.waitForFunction(
        (name: NameArg, sel: string | null) => {
          const doc = (globalThis as any).document;
          const win = globalThis as any;
          const norm = (s: string | null | undefined) => (s ?? '').replace(/\s+/g, ' ').trim();
          const matches = (s: string) => (name.exact !== undefined ? s === name.exact : new RegExp(name.source, name.flags).test(s));
          const root = sel ? doc.querySelector(sel) : doc.body;
          if (!root) return null;
          const found = [...root.querySelectorAll('*')].filter((el: any) => {
            if (!matches(norm(el.innerText))) return false;
            if ([...el.children].some((child: any) => matches(norm(child.innerText)))) return false;
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0 || r.bottom < 0 || r.top > win.innerHeight) return false;
            const hit = doc.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return !!hit && (hit === el || el.contains(hit));
          });
          return found.length === 1 ? found[0] : null;
        },
        { timeout: timeoutMs, polling: 200 },
        toNameArg(text),
        options.within ?? null,
      );
    } catch (err) {
      throw await this.failure(`the text ${String(text)} to click${options.within ? ` in ${options.within}` : ''}`, timeoutMs, err);
    }
    const el = handle.asElement() as ElementHandle;
    await this.settledBox(el, timeoutMs);
    await el.click();
    await el.dispose();
  }

  /** Replaces the text of the one visible field labelled `name` (label, aria-label or placeholder) with `value`. */
  async fill(name: Name, value: string, options: { timeoutMs?: number; within?: string } = {}): Promise<void> {
    const el = await this.waitForNamed('field', name, options.timeoutMs ?? 20_000, options.within);
    await this.settledBox(el, options.timeoutMs ?? 20_000);
    await el.click();
    const mod = process.platform === 'darwin' ? 'Meta' : 'Control';
    await this.page.keyboard.down(mod);
    await this.page.keyboard.press('KeyA');
    await this.page.keyboard.up(mod);
    await this.page.keyboard.press('Backspace');
    await el.type(value);
    const now = await el.evaluate((e: any) => (e.isContentEditable ? e.innerText : e.value) as string);
    if (now.trim() !== value.trim()) throw new Error(`the field ${String(name)} holds ${JSON.stringify(now)} after typing ${JSON.stringify(value)}`);
    await el.dispose();
  }

  /** Resolves when the visible text of the page (or of `within`: a selector or an element) contains `text` (or matches it). */
  async waitForText(text: string | RegExp, timeoutMs = 20_000, within?: Within): Promise<void> {
    const pattern = typeof text === 'string' ? { source: '', flags: '', exact: text } : { source: text.source, flags: text.flags };
    try {
      await this.page.waitForFunction(
        (p: NameArg, sel: string | null, el: any) => {
          const doc = (globalThis as any).document;
          const root = el ?? (sel ? doc.querySelector(sel) : doc.body);
          const shown: string = root?.innerText ?? '';
          return p.exact !== undefined ? shown.includes(p.exact) : new RegExp(p.source, p.flags).test(shown);
        },
        { timeout: timeoutMs, polling: 200 },
        pattern,
        typeof within === 'string' ? within : null,
        typeof within === 'object' ? within : null,
      );
    } catch (err) {
      throw await this.failure(`${String(text)} on the page${within ? ` in ${typeof within === 'string' ? within : 'the given element'}` : ''}`, timeoutMs, err);
    }
  }

  /**
   * Opens the disclosure (accordion row, collapsible) named `name` unless it is open already
   * (clicking an open one closes it), waits for aria-expanded="true", and returns the block that
   * holds it and what it disclosed.
   */
  async expand(name: Name, options: { timeoutMs?: number; within?: string } = {}): Promise<ElementHandle> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    const el = await this.waitForNamed('control', name, timeoutMs, options.within);
    await this.settledBox(el, timeoutMs);
    if ((await el.evaluate((e: any) => e.getAttribute('aria-expanded'))) !== 'true') await el.click();
    try {
      await this.page.waitForFunction((e: any) => e.getAttribute('aria-expanded') === 'true', { timeout: timeoutMs, polling: 100 }, el);
    } catch (err) {
      throw await this.failure(`${String(name)} to be expanded`, timeoutMs, err);
    }
    const block = (await el.evaluateHandle((e: any) => e.parentElement)).asElement() as ElementHandle;
    await el.dispose();
    return block;
  }

  /** The page's visible text (or that of the element `within` selects). */
  text(within?: string): Promise<string> {
    return this.page.evaluate((sel: string | null) => {
      const doc = (globalThis as any).document;
      const root = sel ? doc.querySelector(sel) : doc.body;
      return (root?.innerText ?? '') as string;
    }, within ?? null);
  }

  async screenshot(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true });
    await this.page.screenshot({ path: path as `${string}.png` });
  }

  /** Writes `<base>.png` (the page now), `<base>.html` (its DOM) and `<base>.json` (every request, socket and console error). */
  async saveArtifacts(base: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled(), new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]).catch(() => undefined);
    clearTimeout(timer);
    await this.screenshot(`${base}.png`).catch(() => undefined);
    mkdirSync(dirname(base), { recursive: true });
    const html = await this.page.content().catch(() => '');
    writeFileSync(`${base}.html`, html.replace(/<svg[\s\S]*?<\/svg>/g, '<svg/>'));
    writeFileSync(
      `${base}.json`,
      JSON.stringify({ url: this.page.url(), failed: this.failureReport().split('\n').filter(Boolean), requests: this.apiCalls(), sockets: this.sockets, console: this.console, pageErrors: this.pageErrors }, null, 2),
    );
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
