import { alive, eventually, RunningExecutor, startExecutor as startSandboxExecutor } from './support/processes';
import { projectRoot } from '@berth/config';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The built sandbox executor (`dist/apps/executor/src/main.js`, built by `pretest`) as the sandbox
 * driver runs it, driven over its real HTTP API.
 */

const ENTRY = join(projectRoot(), 'dist/apps/executor/src/main.js');
const TOKEN = 'executor-e2e-token';
/** Short enough for the soft-timeout tests, long enough for any quick command on a slow machine. */
const NO_OUTPUT_MS = 2000;

type Json = Record<string, any>;

/** This suite's executor: the built one, with this suite's token. */
function startExecutor(root: string, env: Record<string, string> = {}): Promise<RunningExecutor> {
  return startSandboxExecutor(root, TOKEN, { BERTH_TERMINAL_NO_OUTPUT_TIMEOUT_MS: String(NO_OUTPUT_MS), ...env });
}

async function post(port: number, path: string, body: unknown, headers: Record<string, string> = { 'x-sandbox-token': TOKEN }): Promise<{ status: number; body: Json }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

/** One conversation's calls to `/api/tools/execute`. */
class Conversation {
  readonly id = randomUUID();
  constructor(
    private readonly port: () => number,
    readonly workingDir: string,
  ) {}

  execute(tool: string, action: Json, override: Json = {}) {
    return post(this.port(), '/api/tools/execute', { conversation_id: this.id, working_dir: this.workingDir, tool, action, ...override });
  }

  async observe(tool: string, action: Json): Promise<Json> {
    const res = await this.execute(tool, action);
    if (res.status !== 200) throw new Error(`${tool} ${JSON.stringify(action)} answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body.observation;
  }

  terminal(action: Json) {
    return this.observe('terminal', action);
  }
  editor(action: Json) {
    return this.observe('file_editor', action);
  }
  tasks(action: Json) {
    return this.observe('task_tracker', action);
  }

  /** Sends empty input until the running command ends; returns the last observation and every text seen. */
  async waitForEnd(first: Json): Promise<{ last: Json; texts: string[] }> {
    const texts = [text(first)];
    let last = first;
    for (let i = 0; i < 30 && last.exit_code === -1; i++) {
      last = await this.terminal({ command: '', is_input: true });
      texts.push(text(last));
    }
    return { last, texts };
  }
}

function text(observation: Json): string {
  return (observation.content as Json[]).map((c) => (c.type === 'text' ? c.text : '')).join('');
}

/** Live processes whose command line is exactly `argv` (zombies excluded). */
function processesRunning(argv: string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === wanted && alive(Number(entry))) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

const COMPLETED = (code: number) => `\n[The command completed with exit code ${code}.]`;
const RESET_TEXT = 'Terminal session has been reset. All previous environment variables and session state have been cleared.';

describe('executor', () => {
  let root: string;
  let executor: RunningExecutor;
  const port = () => executor.port;
  let dirCount = 0;
  /** A conversation with a working directory of its own (not created yet). */
  const conversation = () => new Conversation(port, join(root, `work-${++dirCount}`));

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'berth-executor-')));
    executor = await startExecutor(root);
  });

  afterAll(async () => {
    expect(await executor.stop()).toBe(0);
    rmSync(root, { recursive: true, force: true });
  });

  it('loads only the contracts its entry names (@berth/contracts/executor), none of the gateway\'s', async () => {
    // Every module of the library is built with zod when loaded: the gateway's would double a cold executor's start.
    const entry = readFileSync(join(projectRoot(), 'libs/contracts/src/executor.ts'), 'utf8');
    const named = [...entry.matchAll(/export \* from '\.\/([a-z-]+)'/g)].map((m) => `${m[1]}.js`);
    const script = `require(${JSON.stringify(join(projectRoot(), 'dist/apps/executor/src/server.js'))}); process.stdout.write(JSON.stringify(Object.keys(require.cache)))`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    for await (const chunk of child.stdout!) out += chunk;
    const loaded = (JSON.parse(out) as string[]).filter((file) => file.includes('/dist/libs/contracts/src/')).map((file) => file.split('/').pop());
    expect(loaded.sort()).toEqual(['executor.js', ...named].sort());
    expect(loaded).not.toContain('conversation.js');
  });

  describe('HTTP surface', () => {
    it('answers /health without a token and refuses every other route without the right one', async () => {
      const health = await fetch(`http://127.0.0.1:${port()}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });

      const body = { conversation_id: randomUUID(), working_dir: root, tool: 'terminal', action: { command: 'echo hi' } };
      for (const headers of [{} as Record<string, string>, { 'x-sandbox-token': 'wrong' }, { 'x-sandbox-token': `${TOKEN}x` }, { 'x-sandbox-token': '' }]) {
        expect(await post(port(), '/api/tools/execute', body, headers)).toEqual({ status: 401, body: { detail: 'Unauthorized' } });
      }
      expect((await post(port(), `/api/sessions/${randomUUID()}/close`, {}, {})).status).toBe(401);
      expect((await post(port(), '/api/nothing-here', {}, {})).status).toBe(401);
      expect(await post(port(), '/api/nothing-here', {})).toEqual({ status: 404, body: { detail: 'Not Found' } });
      const get = await fetch(`http://127.0.0.1:${port()}/api/tools/execute`, { headers: { 'x-sandbox-token': TOKEN } });
      expect(get.status).toBe(405);
    });

    it('answers 400 to bodies that are not JSON and 413 to bodies over 10 MiB', async () => {
      const broken = await post(port(), '/api/tools/execute', '{"conversation_id": ');
      expect(broken.status).toBe(400);
      expect(broken.body.detail).toMatch(/not valid JSON/);
      expect((await post(port(), '/api/tools/execute', '')).status).toBe(400);
      const huge = await post(port(), '/api/tools/execute', { conversation_id: randomUUID(), working_dir: root, tool: 'terminal', action: { command: 'x'.repeat(11 * 1024 * 1024) } });
      expect(huge.status).toBe(413);
      expect(huge.body.detail).toMatch(/larger than 10485760 bytes/);
    });

    it('answers 422 with a clear detail to requests that do not make a valid tool call', async () => {
      const c = conversation();
      const cases: [Json, RegExp][] = [
        [{ tool: 'browser', action: {} }, /Unknown tool 'browser'/],
        [{ tool: 'finish', action: { message: 'done' } }, /'finish' is not executed in the sandbox/],
        [{ tool: 'terminal', action: {} }, /Invalid arguments for tool 'terminal' \(TerminalAction\): command: Field required/],
        [{ tool: 'terminal', action: { command: 42 } }, /command: /],
        [{ tool: 'terminal', action: { command: 'ls', bogus: true } }, /Extra inputs are not permitted: bogus/],
        [{ tool: 'terminal', action: { command: 'ls', timeout: -1 } }, /timeout: /],
        [{ tool: 'terminal', action: { command: 'C-c', is_input: true, reset: true } }, /Cannot use reset=True with is_input=True/],
        [{ tool: 'file_editor', action: { command: 'delete', path: '/x' } }, /Invalid arguments for tool 'file_editor' \(FileEditorAction\): command: /],
        [{ tool: 'file_editor', action: { command: 'view' } }, /path: Field required/],
        [{ tool: 'task_tracker', action: { command: 'plan', task_list: [{ title: 't', status: 'later' }] } }, /task_list\.0\.status/],
        [{ tool: 'terminal', action: { command: 'ls' }, working_dir: 'relative/dir' }, /working_dir must be an absolute path/],
        [{ tool: 'terminal', action: { command: 'ls' }, working_dir: '/etc' }, /working_dir \/etc is outside the sandbox: it must be under /],
        [{ tool: 'terminal', action: { command: 'ls' }, conversation_id: 'not-a-uuid' }, /conversation_id must be a UUID/],
        [{ tool: 'terminal', action: 'ls' }, /action: /],
      ];
      for (const [override, detail] of cases) {
        const res = await c.execute(override.tool, override.action, override);
        expect([res.status, res.body.detail]).toEqual([422, expect.stringMatching(detail)]);
      }
      expect((await post(port(), '/api/tools/execute', [1, 2])).status).toBe(422);

      // A working directory that leads out of the sandbox through a symlink.
      symlinkSync(tmpdir(), join(root, 'escape-dir'));
      const escaped = await c.execute('terminal', { command: 'ls' }, { working_dir: join(root, 'escape-dir', 'x') });
      expect([escaped.status, escaped.body.detail]).toEqual([422, expect.stringContaining('is outside the sandbox (it resolves to')]);
    });

    it('takes the arguments as an LLM sends them: summary and security_risk, loose types', async () => {
      const c = conversation();
      const o = await c.terminal({ summary: 'say hello', security_risk: 'LOW', command: 'echo hello', timeout: '10', is_input: 'false' });
      expect(text(o)).toBe('hello');
      const view = await c.editor({ command: 'view', path: c.workingDir, view_range: null, summary: 'look' });
      expect(view.is_error).toBe(false);
    });

    it('closes a conversation session: its shell and running command are killed, the next call starts afresh', async () => {
      const c = conversation();
      await c.terminal({ command: 'export CLOSE_VAR=set' });
      const running = await c.terminal({ command: 'sleep 985', timeout: 1 });
      expect(running.exit_code).toBe(-1);
      expect(processesRunning(['sleep', '985'])).toHaveLength(1);
      expect(await post(port(), `/api/sessions/${c.id}/close`, {})).toEqual({ status: 200, body: { success: true } });
      expect(await eventually(() => processesRunning(['sleep', '985']).length === 0)).toBe(true);
      expect(text(await c.terminal({ command: 'echo ${CLOSE_VAR:-unset}' }))).toBe('unset');
      // Closing an unknown or already closed session is fine too.
      expect(await post(port(), `/api/sessions/${randomUUID()}/close`, {})).toEqual({ status: 200, body: { success: true } });
      expect((await post(port(), '/api/sessions/nope/close', {})).status).toBe(422);
    });
  });

  describe('terminal', () => {
    it('keeps one shell per conversation: cwd, variables and $? persist; exit codes and metadata are reported', async () => {
      const c = conversation();
      const first = await c.terminal({ command: 'pwd' });
      expect(first).toEqual({
        content: [{ cache_prompt: false, type: 'text', text: c.workingDir }],
        is_error: false,
        command: 'pwd',
        exit_code: 0,
        timeout: false,
        metadata: {
          exit_code: 0,
          pid: -1,
          username: expect.any(String),
          hostname: expect.any(String),
          working_dir: c.workingDir,
          py_interpreter_path: expect.any(String),
          prefix: '',
          suffix: COMPLETED(0),
        },
        full_output_save_dir: null,
        kind: 'TerminalObservation',
      });
      expect(existsSync(c.workingDir)).toBe(true);

      await c.terminal({ command: `mkdir -p sub && cd sub && export GREETING='hi there' && myfn() { echo "fn $1"; }` });
      const second = await c.terminal({ command: 'echo "$GREETING" && pwd && myfn ok && echo home=$HOME' });
      expect(text(second)).toBe(`hi there\n${c.workingDir}/sub\nfn ok\nhome=${root}`);
      expect(second.metadata.working_dir).toBe(`${c.workingDir}/sub`);

      const failed = await c.terminal({ command: 'ls /no/such/path' });
      expect(failed.exit_code).toBe(2);
      expect(failed.metadata).toMatchObject({ exit_code: 2, suffix: COMPLETED(2) });
      expect(text(failed)).toMatch(/No such file or directory/);
      expect(failed.is_error).toBe(false);
      expect(text(await c.terminal({ command: 'echo "previous: $?"' }))).toBe('previous: 2');

      // stdout and stderr interleave as produced; the shell hands out no secrets of the executor.
      expect(text(await c.terminal({ command: 'echo one; echo two >&2; echo three' }))).toBe('one\ntwo\nthree');
      expect(text(await c.terminal({ command: 'echo "[${BERTH_SANDBOX_TOKEN:-none}]"; echo $TERM' }))).toBe('[none]\ndumb');

      // Quoting, multi-line commands and here-documents arrive intact.
      const heredoc = await c.terminal({ command: `cat <<'EOF'\nit's "quoted" \\ $HOME é ✓\nEOF\necho done` });
      expect(text(heredoc)).toBe(`it's "quoted" \\ $HOME é ✓\ndone`);

      // A background job reports its pid in the metadata.
      const bg = await c.terminal({ command: 'sleep 0.1 & echo started' });
      expect(bg.metadata.pid).toBeGreaterThan(0);

      // Another conversation has a shell of its own.
      const other = conversation();
      expect(text(await other.terminal({ command: 'echo ${GREETING:-none}' }))).toBe('none');
    });

    it('returns after the soft timeout with exit code -1, and an empty command continues until the command ends', async () => {
      const c = conversation();
      const first = await c.terminal({ command: 'echo start; sleep 5; echo end' });
      expect(first).toMatchObject({ exit_code: -1, timeout: true, is_error: false, command: 'echo start; sleep 5; echo end' });
      expect(text(first)).toBe('start');
      expect(first.metadata).toMatchObject({ exit_code: -1, prefix: '', working_dir: null });
      expect(first.metadata.suffix).toBe(
        '\n[The command has no new output after 2 seconds. You may wait longer to see additional output by sending empty command \'\', ' +
          'send other commands to interact with the current process, send keys ("C-c", "C-z", "C-d") to interrupt/kill the previous ' +
          'command before sending your new command, or use the timeout parameter in terminal for future commands.]',
      );
      const { last, texts } = await c.waitForEnd(first);
      expect(last).toMatchObject({ exit_code: 0, timeout: false, command: '' });
      expect(last.metadata).toMatchObject({ exit_code: 0, prefix: '', suffix: COMPLETED(0), working_dir: c.workingDir });
      expect(texts.join('\n')).toMatch(/^start\n(\n)*end$/);

      // Nothing running any more.
      const none = await c.terminal({ command: '' });
      expect(none).toMatchObject({ is_error: true, exit_code: null });
      expect(text(none)).toBe('No previous running command to retrieve logs from.');
      const noInput = await c.terminal({ command: 'hello', is_input: true });
      expect(text(noInput)).toBe('No previous running command to interact with.');
    });

    it('honours an explicit timeout, refuses a new command while one runs, and C-c interrupts it', async () => {
      const c = conversation();
      const first = await c.terminal({ command: 'echo begin; sleep 101', timeout: 1 });
      expect(first).toMatchObject({ exit_code: -1, timeout: true });
      expect(text(first)).toBe('begin');
      expect(first.metadata.suffix).toMatch(/^\n\[The command timed out after 1\.0 seconds\. You may wait longer/);
      expect(processesRunning(['sleep', '101'])).toHaveLength(1);

      const refused = await c.terminal({ command: 'echo other' });
      expect(refused).toMatchObject({ is_error: true, exit_code: -1, command: 'echo other' });
      expect(refused.metadata.prefix).toBe('[Below is the output of the previous command.]\n');
      expect(refused.metadata.suffix).toMatch(
        /^\n\[Your command "echo other" is NOT executed\. The previous command is still running - You CANNOT send new commands until the previous command is completed\. By setting `is_input` to `true`, you can interact with the current process: /,
      );

      const interrupted = await c.terminal({ command: 'C-c', is_input: true });
      expect(interrupted).toMatchObject({ exit_code: 130, is_error: false, command: 'C-c' });
      expect(interrupted.metadata.suffix).toBe('\n[The command completed with exit code 130. CTRL+C was sent.]');
      expect(await eventually(() => processesRunning(['sleep', '101']).length === 0)).toBe(true);

      // The shell survived the interrupt, state intact; loops are interrupted as a whole.
      expect(text(await c.terminal({ command: 'echo alive' }))).toBe('alive');
      const loop = await c.terminal({ command: 'while true; do sleep 0.2; done', timeout: 1 });
      expect(loop.exit_code).toBe(-1);
      expect((await c.terminal({ command: 'C-c', is_input: true })).exit_code).toBe(130);
      expect(text(await c.terminal({ command: 'echo after-loop' }))).toBe('after-loop');
    });

    it('sends input to a command waiting on stdin, and C-d ends its input', async () => {
      const c = conversation();
      const prompt = await c.terminal({ command: 'read -r NAME && echo "hello $NAME"' });
      expect(prompt.exit_code).toBe(-1);
      const answered = await c.terminal({ command: 'world', is_input: true });
      expect(answered).toMatchObject({ exit_code: 0, command: 'world' });
      expect(text(answered)).toBe('hello world');
      // `read` ran in the shell itself: the variable stays.
      expect(text(await c.terminal({ command: 'echo "name=$NAME"' }))).toBe('name=world');

      const cat = await c.terminal({ command: 'cat > typed.txt; echo "saved $(wc -l < typed.txt) lines"' });
      expect(cat.exit_code).toBe(-1);
      expect((await c.terminal({ command: 'first line', is_input: true })).exit_code).toBe(-1);
      expect((await c.terminal({ command: 'second line', is_input: true })).exit_code).toBe(-1);
      const eof = await c.terminal({ command: 'C-d', is_input: true });
      expect(eof).toMatchObject({ exit_code: 0 });
      expect(eof.metadata.suffix).toBe('\n[The command completed with exit code 0. CTRL+D was sent.]');
      expect(text(eof)).toBe('saved 2 lines');
      expect(readFileSync(join(c.workingDir, 'typed.txt'), 'utf8')).toBe('first line\nsecond line\n');
    });

    it('resets the session on request, and starts a new one after the shell exits', async () => {
      const c = conversation();
      await c.terminal({ command: 'export RESET_VAR=1 && cd /' });
      const reset = await c.terminal({ command: '', reset: true });
      expect(reset).toMatchObject({ command: '[RESET]', exit_code: 0, is_error: false });
      expect(text(reset)).toBe(RESET_TEXT);
      expect(text(await c.terminal({ command: 'echo ${RESET_VAR:-unset} && pwd' }))).toBe(`unset\n${c.workingDir}`);

      // reset kills a running command too, and may carry a command of its own.
      expect((await c.terminal({ command: 'sleep 102', timeout: 1 })).exit_code).toBe(-1);
      const resetWithCommand = await c.terminal({ command: 'echo fresh', reset: true });
      expect(resetWithCommand).toMatchObject({ command: '[RESET] echo fresh', exit_code: 0 });
      expect(text(resetWithCommand)).toBe(`${RESET_TEXT}\n\nfresh`);
      expect(await eventually(() => processesRunning(['sleep', '102']).length === 0)).toBe(true);

      const exited = await c.terminal({ command: 'export GONE=1; exit 3' });
      expect(exited.exit_code).toBe(3);
      expect(exited.metadata.suffix).toMatch(/^\n\[The command completed with exit code 3\.\]\n\[The shell exited/);
      expect(text(await c.terminal({ command: 'echo ${GONE:-new session} && pwd' }))).toBe(`new session\n${c.workingDir}`);
    });

    it('cuts long output to 30,000 characters for the LLM and saves all of it', async () => {
      const c = conversation();
      const full = Array.from({ length: 5000 }, (_, i) => `line-${i + 1}`).join('\n');
      const o = await c.terminal({ command: "seq -f 'line-%g' 1 5000" });
      const shown = text(o);
      expect(o.exit_code).toBe(0);
      expect(shown).toHaveLength(30_000);
      expect(shown.startsWith('line-1\nline-2\n')).toBe(true);
      expect(shown.endsWith('line-4999\nline-5000')).toBe(true);
      const saved = /The complete output has been saved to (\S+) - you can use other tools to view the full content \(truncated part starts around line (\d+)\)/.exec(shown);
      expect(saved).not.toBeNull();
      expect(shown).toContain('<response clipped><NOTE>Due to the max output limit, only part of the full response has been shown to you.');
      expect(o.full_output_save_dir).toBe(join(root, '.berth', 'observations', c.id));
      expect(saved![1].startsWith(`${o.full_output_save_dir}/`)).toBe(true);
      expect(readFileSync(saved![1], 'utf8')).toBe(full);
      // The file is in the sandbox: the agent can read it with its tools.
      const view = await c.editor({ command: 'view', path: saved![1], view_range: [4999, 5000] });
      expect(text(view)).toContain('  4999\tline-4999\n  5000\tline-5000\n');

      // Short output names no file.
      expect((await c.terminal({ command: 'echo short' })).full_output_save_dir).toBeNull();
    });

    it('interrupts the running command when the caller hangs up (an interrupted conversation)', async () => {
      const c = conversation();
      const abort = new AbortController();
      const call = fetch(`http://127.0.0.1:${port()}/api/tools/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-sandbox-token': TOKEN },
        body: JSON.stringify({ conversation_id: c.id, working_dir: c.workingDir, tool: 'terminal', action: { command: 'sleep 103', timeout: 60 } }),
        signal: abort.signal,
      });
      expect(await eventually(() => processesRunning(['sleep', '103']).length === 1)).toBe(true);
      abort.abort();
      await expect(call).rejects.toThrow();
      expect(await eventually(() => processesRunning(['sleep', '103']).length === 0)).toBe(true);
      expect(text(await c.terminal({ command: 'echo next' }))).toBe('next');
    });

    it('answers a Python literal sent as a command with a hint instead of running it', async () => {
      const c = conversation();
      const o = await c.terminal({ command: '[{"path": "/tmp"}]' });
      expect(o.is_error).toBe(true);
      expect(text(o)).toMatch(/^\[Tool-argument error\] The `command` argument looks like a Python\/JSON list literal/);
      expect(text(await c.terminal({ command: '[[ -d / ]] && echo dir' }))).toBe('dir');
    });
  });

  describe('file_editor', () => {
    let c: Conversation;
    let dir: string;
    let file: string;
    beforeAll(async () => {
      c = conversation();
      dir = c.workingDir;
      file = join(dir, 'hello.py');
      await c.terminal({ command: 'true' }); // creates the working directory
    });

    it('creates a file and refuses to overwrite it', async () => {
      const created = await c.editor({ command: 'create', path: file, file_text: 'line1\nline2\nline3\n' });
      expect(created).toEqual({
        content: [{ cache_prompt: false, type: 'text', text: `File created successfully at: ${file}` }],
        is_error: false,
        command: 'create',
        path: file,
        prev_exist: false,
        old_content: null,
        new_content: 'line1\nline2\nline3\n',
        kind: 'FileEditorObservation',
      });
      expect(readFileSync(file, 'utf8')).toBe('line1\nline2\nline3\n');

      const again = await c.editor({ command: 'create', path: file, file_text: 'other' });
      expect(again).toMatchObject({ is_error: true, command: 'create', path: null });
      expect(text(again)).toBe(`Invalid \`path\` parameter: ${file}. File already exists at: ${file}. Cannot overwrite files using command \`create\`.`);
      expect(readFileSync(file, 'utf8')).toBe('line1\nline2\nline3\n');

      const missing = await c.editor({ command: 'create', path: join(dir, 'x.txt') });
      expect(text(missing)).toBe('Parameter `file_text` is required for command: create.');

      // Parent folders are made as needed.
      await c.editor({ command: 'create', path: join(dir, 'deep/er/new.txt'), file_text: 'x' });
      expect(readFileSync(join(dir, 'deep/er/new.txt'), 'utf8')).toBe('x');
    });

    it('views a file as `cat -n`, whole or a range', async () => {
      const whole = await c.editor({ command: 'view', path: file });
      expect(whole).toMatchObject({ is_error: false, command: 'view', path: file, prev_exist: true, old_content: null, new_content: null });
      expect(text(whole)).toBe(`Here's the result of running \`cat -n\` on ${file}:\n     1\tline1\n     2\tline2\n     3\tline3\n     4\t\n`);
      expect(text(await c.editor({ command: 'view', path: file, view_range: [2, -1] }))).toBe(
        `Here's the result of running \`cat -n\` on ${file}:\n     2\tline2\n     3\tline3\n`,
      );
      expect(text(await c.editor({ command: 'view', path: file, view_range: [2, 10] }))).toBe(
        `NOTE: We only show up to 3 since there're only 3 lines in this file.\nHere's the result of running \`cat -n\` on ${file}:\n     2\tline2\n     3\tline3\n`,
      );
      const outOfRange = await c.editor({ command: 'view', path: file, view_range: [5, 6] });
      expect(outOfRange.is_error).toBe(true);
      expect(text(outOfRange)).toBe('Invalid `view_range` parameter: [5, 6]. Its first element `5` should be within the range of lines of the file: [1, 3].');
      expect(text(await c.editor({ command: 'view', path: file, view_range: [3, 2] }))).toMatch(/Its second element `2` should be greater than or equal to the first element `3`/);
      expect(text(await c.editor({ command: 'view', path: file, view_range: [1] }))).toBe('Invalid `view_range` parameter: [1]. It should be a list of two integers.');
    });

    it('lists a directory two levels deep without hidden entries', async () => {
      const tree = join(dir, 'tree');
      mkdirSync(join(tree, 'sub/deeper'), { recursive: true });
      mkdirSync(join(tree, '.git'));
      writeFileSync(join(tree, 'a.txt'), 'a');
      writeFileSync(join(tree, '.env'), 'secret');
      writeFileSync(join(tree, 'sub/inner.txt'), 'i');
      writeFileSync(join(tree, 'sub/.hidden'), 'h');
      writeFileSync(join(tree, 'sub/deeper/too-deep.txt'), 'd');
      const o = await c.editor({ command: 'view', path: `${tree}/` });
      expect(o).toMatchObject({ is_error: false, path: tree });
      expect(text(o)).toBe(
        `Here's the files and directories up to 2 levels deep in ${tree}, excluding hidden items:\n${tree}/\n${tree}/a.txt\n${tree}/sub/\n${tree}/sub/deeper/\n${tree}/sub/inner.txt\n\n` +
          `2 hidden files/directories in this directory are excluded. You can use 'ls -la ${tree}' to see them.`,
      );
      expect(text(await c.editor({ command: 'view', path: tree, view_range: [1, 2] }))).toMatch(/The `view_range` parameter is not allowed when `path` points to a directory/);
      expect(text(await c.editor({ command: 'str_replace', path: tree, old_str: 'a', new_str: 'b' }))).toBe(
        `Invalid \`path\` parameter: ${tree}. The path ${tree} is a directory and only the \`view\` command can be used on directories.`,
      );
    });

    it('replaces a unique string, and explains when there is none or several', async () => {
      const o = await c.editor({ command: 'str_replace', path: file, old_str: 'line2', new_str: 'LINE2' });
      expect(o).toMatchObject({ is_error: false, command: 'str_replace', path: file, prev_exist: true, old_content: 'line1\nline2\nline3\n', new_content: 'line1\nLINE2\nline3\n' });
      expect(text(o)).toBe(
        `The file ${file} has been edited. Here's the result of running \`cat -n\` on a snippet of ${file}:\n     1\tline1\n     2\tLINE2\n     3\tline3\n     4\t\n` +
          'Review the changes and make sure they are as expected. Edit the file again if necessary.',
      );
      expect(readFileSync(file, 'utf8')).toBe('line1\nLINE2\nline3\n');

      const none = await c.editor({ command: 'str_replace', path: file, old_str: 'nope', new_str: 'x' });
      expect(none).toMatchObject({ is_error: true, command: 'str_replace' });
      expect(text(none)).toBe(`No replacement was performed, old_str \`nope\` did not appear verbatim in ${file}.`);

      const several = await c.editor({ command: 'str_replace', path: file, old_str: 'line', new_str: 'row' });
      expect(text(several)).toBe('No replacement was performed. Multiple occurrences of old_str `line` in lines [1, 3]. Please ensure it is unique.');

      const same = await c.editor({ command: 'str_replace', path: file, old_str: 'line1', new_str: 'line1' });
      expect(text(same)).toBe('Invalid `new_str` parameter: line1. No replacement was performed. `new_str` and `old_str` must be different.');

      // Surrounding whitespace in old_str is forgiven; readFileSync shows nothing else changed.
      expect((await c.editor({ command: 'str_replace', path: file, old_str: '  line3\n\n', new_str: 'line3' })).is_error).toBe(false);
      expect(readFileSync(file, 'utf8')).toBe('line1\nLINE2\nline3\n');
    });

    it('inserts after a line and undoes edits one by one', async () => {
      const o = await c.editor({ command: 'insert', path: file, insert_line: 1, new_str: 'inserted' });
      expect(o).toMatchObject({ is_error: false, command: 'insert', old_content: 'line1\nLINE2\nline3\n', new_content: 'line1\ninserted\nLINE2\nline3\n' });
      expect(text(o)).toBe(
        `The file ${file} has been edited. Here's the result of running \`cat -n\` on a snippet of the edited file:\n     1\tline1\n     2\tinserted\n     3\tLINE2\n     4\tline3\n     5\t\n` +
          'Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.',
      );
      const bad = await c.editor({ command: 'insert', path: file, insert_line: 9, new_str: 'x' });
      expect(text(bad)).toBe('Invalid `insert_line` parameter: 9. It should be within the range of allowed values: [0, 4]');
      expect(text(await c.editor({ command: 'insert', path: file, insert_line: 1 }))).toBe('Parameter `new_str` is required for command: insert.');

      const undo1 = await c.editor({ command: 'undo_edit', path: file });
      expect(undo1).toMatchObject({ is_error: false, command: 'undo_edit', old_content: 'line1\ninserted\nLINE2\nline3\n', new_content: 'line1\nLINE2\nline3\n' });
      expect(text(undo1)).toBe(`Last edit to ${file} undone successfully. Here's the result of running \`cat -n\` on ${file}:\n     1\tline1\n     2\tLINE2\n     3\tline3\n     4\t\n`);
      expect(readFileSync(file, 'utf8')).toBe('line1\nLINE2\nline3\n');
      await c.editor({ command: 'undo_edit', path: file }); // the whitespace-forgiving replacement (no change)
      await c.editor({ command: 'undo_edit', path: file }); // line2 → LINE2
      expect(readFileSync(file, 'utf8')).toBe('line1\nline2\nline3\n');
      await c.editor({ command: 'undo_edit', path: file }); // the creation (restores the created text, as OpenHands)
      const empty = await c.editor({ command: 'undo_edit', path: file });
      expect(empty.is_error).toBe(true);
      expect(text(empty)).toBe(`No edit history found for ${file}.`);
    });

    it('keeps CRLF line endings and inserts after a last line without newline', async () => {
      const crlf = join(dir, 'crlf.txt');
      writeFileSync(crlf, 'a\r\nb\r\n');
      await c.editor({ command: 'str_replace', path: crlf, old_str: 'a\nb', new_str: 'a\nB' });
      expect(readFileSync(crlf, 'utf8')).toBe('a\r\nB\r\n');
      const noEol = join(dir, 'noeol.txt');
      writeFileSync(noEol, 'x\ny');
      await c.editor({ command: 'insert', path: noEol, insert_line: 2, new_str: 'z' });
      expect(readFileSync(noEol, 'utf8')).toBe('x\ny\nz\n');
    });

    it('refuses relative paths, missing files and binary files, and shows images', async () => {
      const relative = await c.editor({ command: 'view', path: 'hello.py' });
      expect(text(relative)).toBe(`Invalid \`path\` parameter: hello.py. The path should be an absolute path. Maybe you meant ${file}?`);
      const missing = await c.editor({ command: 'view', path: join(dir, 'missing.txt') });
      expect(text(missing)).toBe(`Invalid \`path\` parameter: ${join(dir, 'missing.txt')}. The path ${join(dir, 'missing.txt')} does not exist. Please provide a valid path.`);
      writeFileSync(join(dir, 'blob.bin'), Buffer.from([0, 1, 2, 3, 0, 255]));
      expect(text(await c.editor({ command: 'view', path: join(dir, 'blob.bin') }))).toBe(
        `File validation failed for ${join(dir, 'blob.bin')}: File appears to be binary and this file type cannot be read or edited by this tool.`,
      );
      const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
      writeFileSync(join(dir, 'pixel.png'), png);
      const image = await c.editor({ command: 'view', path: join(dir, 'pixel.png') });
      expect(image.content).toEqual([
        { cache_prompt: false, type: 'text', text: `Image file ${join(dir, 'pixel.png')} read successfully. Displaying image content.` },
        { cache_prompt: false, type: 'image', image_urls: [`data:image/png;base64,${png.toString('base64')}`] },
      ]);
    });

    it('refuses paths outside the sandbox root, symlinks included', async () => {
      const outside = mkdtempSync(join(tmpdir(), 'berth-outside-'));
      try {
        writeFileSync(join(outside, 'secret.txt'), 'secret');
        const direct = await c.editor({ command: 'view', path: join(outside, 'secret.txt') });
        expect(direct.is_error).toBe(true);
        expect(text(direct)).toBe(
          `Invalid \`path\` parameter: ${join(outside, 'secret.txt')}. The path ${join(outside, 'secret.txt')} is outside the sandbox: only files under ${root} can be viewed or edited.`,
        );
        expect(text(await c.editor({ command: 'view', path: `${root}/../${outside.split('/').pop()}/secret.txt` }))).toMatch(/is outside the sandbox/);

        // A link inside the root to a folder outside it.
        symlinkSync(outside, join(dir, 'link-out'));
        const viaLink = await c.editor({ command: 'view', path: join(dir, 'link-out/secret.txt') });
        expect(text(viaLink)).toContain(`is outside the sandbox (it resolves to ${join(outside, 'secret.txt')})`);
        const createViaLink = await c.editor({ command: 'create', path: join(dir, 'link-out/new.txt'), file_text: 'x' });
        expect(createViaLink.is_error).toBe(true);
        expect(existsSync(join(outside, 'new.txt'))).toBe(false);
        const editViaLink = await c.editor({ command: 'str_replace', path: join(dir, 'link-out/secret.txt'), old_str: 'secret', new_str: 'pwned' });
        expect(editViaLink.is_error).toBe(true);
        expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('secret');

        // A dangling link whose target is outside: creating through it is refused too.
        symlinkSync(join(outside, 'planted.txt'), join(dir, 'dangling'));
        expect((await c.editor({ command: 'create', path: join(dir, 'dangling'), file_text: 'x' })).is_error).toBe(true);
        expect(existsSync(join(outside, 'planted.txt'))).toBe(false);

        // The directory listing does not descend into a linked folder outside the root.
        const listing = text(await c.editor({ command: 'view', path: dir }));
        expect(listing).toContain(`${dir}/link-out/\n`);
        expect(listing).not.toContain('secret.txt');

        // Links that stay inside the root are fine.
        symlinkSync(file, join(dir, 'link-in.py'));
        expect(text(await c.editor({ command: 'view', path: join(dir, 'link-in.py') }))).toContain('line1');
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });
  });

  describe('task_tracker', () => {
    it('plans and views a task list that survives an executor restart', async () => {
      const c = conversation();
      const empty = await c.tasks({ command: 'view' });
      expect(empty).toEqual({
        content: [{ cache_prompt: false, type: 'text', text: 'No task list found. Use the "plan" command to create one.' }],
        is_error: false,
        command: 'view',
        task_list: [],
        kind: 'TaskTrackerObservation',
      });
      const tasks = [
        { title: 'Design', notes: 'API first', status: 'done' },
        { title: 'Build', status: 'in_progress' },
        { title: 'Test' },
      ];
      const normalized = [
        { title: 'Design', notes: 'API first', status: 'done' },
        { title: 'Build', notes: '', status: 'in_progress' },
        { title: 'Test', notes: '', status: 'todo' },
      ];
      const planned = await c.tasks({ command: 'plan', task_list: tasks });
      expect(planned).toEqual({
        content: [{ cache_prompt: false, type: 'text', text: 'Task list has been updated with 3 item(s).' }],
        is_error: false,
        command: 'plan',
        task_list: normalized,
        kind: 'TaskTrackerObservation',
      });
      const expectedView = { command: 'view', task_list: normalized, is_error: false };
      const formatted = '# Task List\n\n1. ✅ Design\n   API first\n\n2. 🔄 Build\n\n3. ⏳ Test';
      const viewed = await c.tasks({});
      expect(viewed).toMatchObject(expectedView);
      expect(text(viewed)).toBe(formatted);
      expect(JSON.parse(readFileSync(join(root, '.berth', 'tasks', `${c.id}.json`), 'utf8'))).toEqual(normalized);

      expect(await executor.stop()).toBe(0);
      executor = await startExecutor(root);
      const afterRestart = await c.tasks({ command: 'view' });
      expect(afterRestart).toMatchObject(expectedView);
      expect(text(afterRestart)).toBe(formatted);
    });
  });

  describe('shutdown', () => {
    it('exits 0 on SIGTERM and takes the shells and their commands with it', async () => {
      const ownRoot = realpathSync(mkdtempSync(join(tmpdir(), 'berth-executor-term-')));
      const own = await startExecutor(ownRoot);
      try {
        const c = new Conversation(() => own.port, join(ownRoot, 'w'));
        await c.terminal({ command: 'sleep 986 &' });
        const running = await c.terminal({ command: 'echo $$; sleep 987', timeout: 1 });
        expect(running.exit_code).toBe(-1);
        const shellPid = Number(text(running));
        expect(alive(shellPid)).toBe(true);
        expect(processesRunning(['sleep', '986'])).toHaveLength(1);
        expect(processesRunning(['sleep', '987'])).toHaveLength(1);

        own.child.kill('SIGTERM');
        expect(await own.exited).toBe(0);
        expect(await eventually(() => !alive(shellPid) && processesRunning(['sleep', '986']).length === 0 && processesRunning(['sleep', '987']).length === 0)).toBe(true);
      } finally {
        await own.stop();
        rmSync(ownRoot, { recursive: true, force: true });
      }
    });

    it('refuses to start without its token or sandbox root', async () => {
      const run = (env: Record<string, string>) =>
        new Promise<{ code: number | null; output: string }>((resolve) => {
          const child = spawn(process.execPath, [ENTRY], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'pipe' });
          let output = '';
          child.stderr.on('data', (d) => (output += d));
          child.on('exit', (code) => resolve({ code, output }));
        });
      expect(await run({ BERTH_SANDBOX_ROOT: root })).toEqual({ code: 2, output: expect.stringContaining('BERTH_SANDBOX_TOKEN is required') });
      expect(await run({ BERTH_SANDBOX_TOKEN: TOKEN })).toEqual({ code: 2, output: expect.stringContaining('BERTH_SANDBOX_ROOT is required') });
      expect(await run({ BERTH_SANDBOX_TOKEN: TOKEN, BERTH_SANDBOX_ROOT: 'relative' })).toEqual({ code: 2, output: expect.stringContaining('must be an absolute path') });
    });
  });
});
