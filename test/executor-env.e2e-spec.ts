import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunningExecutor, startExecutor } from './support/processes';

/**
 * The executor's per-call `env` (`POST /api/tools/execute`): what the worker sends for a terminal
 * command that names conversation secrets. It is set for that command line only, in the
 * persistent shell, and leaves nothing behind: not in the shell afterwards, not in any argv.
 */

const TOKEN = 'executor-env-token';
type Json = Record<string, any>;

function text(observation: Json): string {
  return (observation.content as Json[]).map((c) => (c.type === 'text' ? c.text : '')).join('');
}

/** Every process's command line (what `ps` shows any user), joined. */
function everyArgv(): string {
  let all = '';
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      all += readFileSync(`/proc/${entry}/cmdline`, 'utf8') + '\n';
    } catch {
      /* gone meanwhile */
    }
  }
  return all;
}

describe('executor: per-command env for the terminal', () => {
  let root: string;
  let executor: RunningExecutor;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'berth-executor-env-')));
    executor = await startExecutor(root, TOKEN, { BERTH_TERMINAL_NO_OUTPUT_TIMEOUT_MS: '2000' });
  });
  afterAll(async () => {
    expect(await executor.stop()).toBe(0);
    rmSync(root, { recursive: true, force: true });
  });

  const conversation = () => {
    const id = randomUUID();
    const workingDir = join(root, `work-${id}`);
    const execute = async (tool: string, action: Json, env?: Record<string, string>) => {
      const res = await fetch(`http://127.0.0.1:${executor.port}/api/tools/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-sandbox-token': TOKEN },
        body: JSON.stringify({ conversation_id: id, working_dir: workingDir, tool, action, ...(env ? { env } : {}) }),
      });
      return { status: res.status, body: (await res.json()) as Json };
    };
    const terminal = async (command: string, env?: Record<string, string>, extra: Json = {}) => {
      const res = await execute('terminal', { command, ...extra }, env);
      if (res.status !== 200) throw new Error(`terminal ${command} answered ${res.status}: ${JSON.stringify(res.body)}`);
      return res.body.observation as Json;
    };
    return { execute, terminal };
  };

  it('sets the variables for that command only, any value byte for byte, and restores what the names held', async () => {
    const c = conversation();
    const tricky = `it's "quoted" $HOME \`x\` \\ back\nslash\ttab ünï 🔑`;
    const seen = await c.terminal('printf "%s" "$TRICKY"; echo; echo "[$PLAIN] [$OWN]"; false', { TRICKY: tricky, PLAIN: 'plain-value', OWN: 'from-the-call' });
    expect(text(seen).split('\n[')[0]).toBe(tricky);
    expect(text(seen)).toContain('[plain-value] [from-the-call]');
    expect(seen.exit_code).toBe(1);

    // The variable the shell had before (exported, its own value) comes back; the others are gone;
    // `$?` and the shell's own state (cd, exports, functions) carry over as always.
    await c.terminal('export OWN=mine; cd /tmp; f() { echo fn; }');
    await c.terminal('echo "[$OWN]"; cd /; export LATER=1', { OWN: 'secret-for-one-line', PLAIN: 'x' });
    const after = await c.terminal('false');
    expect(after.exit_code).toBe(1);
    const state = await c.terminal('echo "rc=$? [${TRICKY-unset}] [${PLAIN-unset}] [$OWN] [$LATER] $PWD"; f; declare -p OWN');
    expect(text(state)).toBe('rc=1 [unset] [unset] [mine] [1] /\nfn\ndeclare -x OWN="mine"');
  });

  it('undoes the variables after an interrupted command too, and input to a running command leaves none behind', async () => {
    const c = conversation();
    const value = `during-${randomUUID()}`;
    const running = await c.terminal('echo started-$INTERRUPTED; sleep 30', { INTERRUPTED: value }, { timeout: 1 });
    expect(running.exit_code).toBe(-1);
    expect(text(running)).toContain(`started-${value}`);
    // While it runs, the value is in no process's argv (the line went to the shell's stdin; export is a builtin).
    expect(everyArgv()).not.toContain(value);
    const stopped = await c.terminal('C-c', { INTERRUPTED: 'via-input' }, { is_input: true });
    expect(stopped.exit_code).toBe(130);
    const after = await c.terminal('echo "[${INTERRUPTED-unset}]"; cat /proc/$$/environ | tr "\\0" "\\n" | grep -c INTERRUPTED');
    expect(text(after)).toBe('[unset]\n0');
  });

  it('reaches the processes the command starts, and no later command', async () => {
    const c = conversation();
    const child = await c.terminal('bash -c \'echo "child=$CHILD_SEES"\'; sh -c "printenv CHILD_SEES"', { CHILD_SEES: 'inherited' });
    expect(text(child)).toBe('child=inherited\ninherited');
    const later = await c.terminal('bash -c \'echo "later=${CHILD_SEES-unset}"\'');
    expect(text(later)).toBe('later=unset');
  });

  it('refuses env for other tools and names a shell cannot export', async () => {
    const c = conversation();
    const editor = await c.execute('file_editor', { command: 'view', path: root }, { A: 'b' });
    expect(editor.status).toBe(422);
    expect(editor.body.detail).toMatch(/env applies to the terminal tool only/);
    for (const env of [{ 'BAD-NAME': 'x' }, { '1ABC': 'x' }, { 'A B': 'x' }, { A: 1 }, { A: 'nul\0byte' }]) {
      const res = await c.execute('terminal', { command: 'echo hi' }, env as never);
      expect(res.status).toBe(422);
      expect(res.body.detail).toMatch(/env/);
    }
  });
});
