import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlmStub, StubRequest, StubTurn } from '../../libs/testing/src/llm-stub';

/*
 * The OpenHands Python SDK suite (test/python-sdk/, pytest in the reference venv) and the scripted
 * LLM it drives. Its tests script the LLM from Python: a conversation's first user message carries
 * "STUB_SCRIPT: <json list of StubTurn>" on one line, and the i-th LLM call of that conversation is
 * answered with turn i. "{{workdir}}" in a turn stands for the working directory the agent was told
 * in its system prompt (Berth places a working dir such as /workspace/project inside the sandbox and
 * tells the agent the real path, as a real LLM would then use it), or, when the prompt names none
 * (the OpenHands reference server, whose working dirs are real), the one the task names after
 * "Working directory: ".
 */

const MARKER = 'STUB_SCRIPT:';

function text(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((c: { type?: string; text?: string }) => (c?.type === 'text' ? (c.text ?? '') : '')).join('');
}

/** Installs the message-scripted answers as the stub's fallback script. */
export function scriptFromMessages(llm: LlmStub): void {
  const calls = new Map<string, number>();
  llm.fallbackScript((request: StubRequest): StubTurn => {
    const system = text(request.body.messages.find((m) => m.role === 'system')?.content);
    // OpenHands' own server asks the agent's LLM for a title too; that call is not a turn.
    if (/title for the conversation/i.test(system)) return { text: 'A scripted title' };
    const task = text(request.body.messages.find((m) => m.role === 'user')?.content);
    const at = task.indexOf(MARKER);
    if (at < 0) return { status: 500, errorCode: 'no_script' };
    const turn = calls.get(task) ?? 0;
    calls.set(task, turn + 1);
    const turns = JSON.parse(task.slice(at + MARKER.length).split('\n')[0]) as StubTurn[];
    if (turn >= turns.length) return { status: 500, errorCode: `no_scripted_turn_${turn}` };
    const workdir = /Your working directory is (\S+?)\.(\s|$)/.exec(system)?.[1] ?? /Working directory: (\S+)/.exec(task)?.[1];
    const answer = JSON.stringify(turns[turn]);
    return JSON.parse(workdir ? answer.split('{{workdir}}').join(workdir) : answer) as StubTurn;
  });
}

/**
 * What the Python side may ask the test process to do (restart the gateway…): `POST /<name>` runs
 * that action and answers 200 once it is done, 500 with the error otherwise.
 */
export async function controlServer(actions: Record<string, () => Promise<void>>): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const action = req.method === 'POST' ? actions[(req.url ?? '').slice(1)] : undefined;
    req.resume();
    if (!action) return void res.writeHead(404).end();
    action().then(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"done":true}'),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.stack ?? String(err)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

export interface PytestResult {
  code: number | null;
  output: string;
  /** the junit report: one entry per test case */
  cases: { name: string; outcome: 'passed' | 'failed' | 'error' | 'skipped' }[];
}

/**
 * Runs pytest over test/python-sdk with the venv's python, in the offline environment of the
 * reference processes, with `env` added (the server URL, its key, the LLM's URL).
 */
export async function runPytest(python: string, env: Record<string, string>, args: string[] = [], timeoutMs = 170_000): Promise<PytestResult> {
  const { referenceEnv, REPO_ROOT } = require('../../scripts/reference-server.js');
  const home = mkdtempSync(join(tmpdir(), 'berth-pysdk-'));
  const report = join(home, 'junit.xml');
  try {
    const child = spawn(
      python,
      ['-m', 'pytest', '-p', 'no:cacheprovider', '-q', '-rfE', '--color=no', `--junitxml=${report}`, ...args],
      {
        cwd: join(REPO_ROOT, 'test', 'python-sdk'),
        env: referenceEnv(home, { OPENHANDS_SUPPRESS_BANNER: '1', ...env }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n[runPytest: killed after ${timeoutMs} ms]\n`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
    }, timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    clearTimeout(timer);
    return { code, output, cases: readJunit(report) };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function readJunit(path: string): PytestResult['cases'] {
  let xml = '';
  try {
    xml = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const cases: PytestResult['cases'] = [];
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = m[1];
    const body = m[3] ?? '';
    const name = `${/classname="([^"]*)"/.exec(attrs)?.[1] ?? ''}::${/\bname="([^"]*)"/.exec(attrs)?.[1] ?? ''}`;
    const outcome = /<failure\b/.test(body) ? 'failed' : /<error\b/.test(body) ? 'error' : /<skipped\b/.test(body) ? 'skipped' : 'passed';
    cases.push({ name, outcome });
  }
  return cases;
}
