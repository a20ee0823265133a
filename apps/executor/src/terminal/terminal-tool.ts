import { cmdOutputMetadata, CmdOutputMetadata, terminalObservation, TerminalAction, TerminalObservation } from '@berth/contracts/executor';
import { mkdirSync, writeFileSync } from 'node:fs';
import { HttpError, SerialQueue } from '../errors';
import { DEFAULT_TRUNCATE_NOTICE, truncateMiddle } from '../truncate';
import { BashSession } from './bash-session';
import { CapturedOutput } from './output-buffer';
import { isSpecialKey, keyInput, literalArgumentHint, pythonLiteralKind } from './keys';

/** The SDK's MAX_CMD_OUTPUT_SIZE: what the LLM may see of one observation's output. */
export const MAX_CMD_OUTPUT_SIZE = 30_000;

const TIMEOUT_MESSAGE =
  "You may wait longer to see additional output by sending empty command '', send other commands to interact with the " +
  'current process, send keys ("C-c", "C-z", "C-d") to interrupt/kill the previous command before sending your new ' +
  'command, or use the timeout parameter in terminal for future commands.';
const ABANDON_GRACE_MS = 2000;
const CONTINUE_PREFIX = '[Below is the output of the previous command.]\n';
/**
 * An interactive bash without a terminal complains when a foreground job dies of a signal (it tries
 * to restore terminal settings on a pipe): noise that is not the command's output.
 */
const TTY_NOISE = /^\S*bash: \[\d+: \d+ \(\d+\)\] tcsetattr: Inappropriate ioctl for device\n?/gm;
const RESET_TEXT = 'Terminal session has been reset. All previous environment variables and session state have been cleared.';

export interface TerminalEnvironment {
  /** The shell's environment (sanitized: no executor secret in it). */
  env: Record<string, string>;
  /** Private folder for the stdin FIFOs. */
  runDir: string;
  /** Where full outputs of truncated observations go (`full_output_save_dir`). */
  observationDir: string;
  /** A fresh file in `observationDir` for one output. */
  nextOutputFile: () => string;
  noOutputTimeoutMs: number;
  maxWaitMs: number;
  username: string | null;
  hostname: string | null;
}

/** Python's repr of a float (`5` → `5.0`), as the SDK prints `timeout`. */
function pyFloat(n: number): string {
  return Number.isInteger(n) ? n.toFixed(1) : String(n);
}

function seconds(ms: number): string {
  return String(ms / 1000);
}

/**
 * A conversation's `terminal` tool: one persistent shell, with OpenHands' semantics for soft and
 * hard timeouts, continuing a running command, input and keys, reset, and output truncation.
 * Calls are served one at a time.
 */
export class TerminalTool {
  private session: BashSession | null = null;
  /** A command was started and its end not yet reported to the agent. */
  private unreported = false;
  /** Part of the running command's output was already reported (the next part gets CONTINUE_PREFIX). */
  private partial = false;
  private readonly queue = new SerialQueue();
  private closed = false;

  constructor(private readonly environment: TerminalEnvironment) {}

  /**
   * Runs one terminal call. `abandoned` fires when the caller is gone (an interrupt, a crashed
   * worker): the running command gets SIGINT, as OpenHands interrupts a terminal. `env` is set for
   * a new command only (not for input to a running one, nor a wait for more output), and only
   * while that command line runs.
   */
  execute(action: TerminalAction, workingDir: string, abandoned?: AbortSignal, env: Record<string, string> = {}): Promise<TerminalObservation> {
    if (action.reset && action.is_input) throw new HttpError(422, "Invalid arguments for tool 'terminal' (TerminalAction): Cannot use reset=True with is_input=True");
    return this.queue.run(() => {
      if (abandoned?.aborted) return Promise.resolve(terminalObservation('The call was abandoned before it ran.', { is_error: true, command: action.command }));
      this.abandoned = abandoned;
      return this.executeNow(action, workingDir, env).finally(() => (this.abandoned = undefined));
    });
  }

  private abandoned: AbortSignal | undefined;

  /** Kills the shell and its process group. */
  close(): void {
    this.closed = true;
    this.dropSession();
  }

  /** Whether a command of this terminal is running now. */
  get busy(): boolean {
    return this.session?.running ?? false;
  }

  /** Synchronous kill for process exit. */
  killNow(): void {
    this.session?.killGroup('SIGKILL');
  }

  private async executeNow(action: TerminalAction, workingDir: string, env: Record<string, string>): Promise<TerminalObservation> {
    const command = action.command.trim();
    if (!action.is_input) {
      const literal = pythonLiteralKind(action.command);
      if (literal) return terminalObservation(literalArgumentHint(literal, action.command), { is_error: true, command: action.command });
    }

    if (action.reset) {
      this.dropSession();
      const reset = terminalObservation(RESET_TEXT, { command: '[RESET]', exit_code: 0 });
      if (!command) {
        const started = await this.ensureSession(workingDir, '[RESET]');
        return 'error' in started ? started.error : reset;
      }
      const result = await this.runCommand(command, action.timeout, workingDir, env);
      const text = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
      return { ...result, content: [{ ...result.content[0], type: 'text', text: `${RESET_TEXT}\n\n${text}` }], command: `[RESET] ${action.command}` };
    }

    if (!this.unreported) {
      if (command === '') return terminalObservation('No previous running command to retrieve logs from.', { is_error: true, command });
      if (action.is_input) return terminalObservation('No previous running command to interact with.', { is_error: true, command });
      return this.runCommand(command, action.timeout, workingDir, env);
    }

    const session = this.session!;
    if (!action.is_input && command !== '') {
      if (session.running) return this.notExecuted(session, command);
      // The earlier command ended while nobody was waiting for it: the new one may run (what the
      // earlier one printed last comes first in its output).
      this.unreported = false;
      this.partial = false;
      return this.runCommand(command, action.timeout, workingDir, env);
    }

    let note = '';
    if (action.is_input && command !== '') {
      if (!session.running) {
        note = '\n[The command had already finished; the input was not sent.]';
      } else {
        const input = keyInput(command);
        if (input.kind === 'interrupt') session.interrupt();
        else if (input.kind === 'eof') session.closeInput();
        else if (!session.acceptsInput) {
          return terminalObservation(
            "The running command's standard input is closed (C-d was sent), so it cannot take more input. Send C-c to interrupt it, or an empty command to wait for more output.",
            { is_error: true, command },
          );
        } else {
          try {
            await session.sendInput(input.data);
          } catch (err) {
            return terminalObservation(`The input could not be sent: ${(err as Error).message}.`, { is_error: true, command });
          }
        }
      }
    }
    const observation = await this.awaitOutcome(session, command, action.timeout, isSpecialKey(command));
    if (note) observation.metadata.suffix += note;
    return observation;
  }

  private async runCommand(command: string, timeout: number | null, workingDir: string, env: Record<string, string>): Promise<TerminalObservation> {
    const started = await this.ensureSession(workingDir, command);
    if ('error' in started) return started.error;
    const session = started.session;
    try {
      await session.run(command, env);
    } catch (err) {
      return terminalObservation(`The command could not be started: ${(err as Error).message}. Send it again, or reset the terminal.`, { is_error: true, command });
    }
    this.unreported = true;
    this.partial = false;
    const observation = await this.awaitOutcome(session, command, timeout, false);
    if (started.restarted) {
      observation.content[0] = { ...observation.content[0], type: 'text', text: `${RESET_TEXT}\n\n${(observation.content[0] as { text: string }).text}` };
      observation.command = `[RESET] ${command}`;
    }
    return observation;
  }

  /** The shell, started in `workingDir` when there is none (or the last one died). */
  private async ensureSession(workingDir: string, command: string): Promise<{ session: BashSession; restarted: boolean } | { error: TerminalObservation }> {
    if (this.closed) return { error: terminalObservation('The terminal session was closed.', { is_error: true, command }) };
    let restarted = false;
    if (this.session && !this.session.alive) {
      // It died while idle (killed from outside): say so, as the SDK does when it recreates one.
      this.dropSession();
      restarted = true;
    }
    if (this.session) return { session: this.session, restarted };
    try {
      mkdirSync(this.environment.runDir, { recursive: true, mode: 0o700 });
      this.session = await BashSession.start({
        cwd: workingDir,
        env: this.environment.env,
        runDir: this.environment.runDir,
        spillFile: this.environment.nextOutputFile,
      });
    } catch (err) {
      this.session = null;
      return { error: terminalObservation(`Could not start the terminal session (bash): ${(err as Error).message}`, { is_error: true, command }) };
    }
    return { session: this.session, restarted };
  }

  private dropSession(): void {
    this.session?.kill();
    this.session?.output.discard();
    this.session = null;
    this.unreported = false;
    this.partial = false;
  }

  /** Waits for the running command to end, or for a timeout; then reports what it printed. */
  private async awaitOutcome(session: BashSession, command: string, timeout: number | null, specialKey: boolean): Promise<TerminalObservation> {
    const start = Date.now();
    let abandonedAt = 0;
    const onAbandon = () => {
      abandonedAt = Date.now();
      if (session.running) session.interrupt();
      session.wake();
    };
    const abandoned = this.abandoned;
    if (abandoned?.aborted) onAbandon();
    else abandoned?.addEventListener('abort', onAbandon, { once: true });
    try {
      return await this.waitLoop(session, command, timeout, specialKey, start, () => abandonedAt);
    } finally {
      abandoned?.removeEventListener('abort', onAbandon);
    }
  }

  private async waitLoop(
    session: BashSession,
    command: string,
    timeout: number | null,
    specialKey: boolean,
    start: number,
    abandonedAt: () => number,
  ): Promise<TerminalObservation> {
    const { noOutputTimeoutMs, maxWaitMs } = this.environment;
    for (;;) {
      if (!session.running) return session.alive ? this.completed(session, command, specialKey) : this.exited(session, command);
      const now = Date.now();
      if (abandonedAt() > 0) {
        // Nobody reads this answer: give the interrupted command a moment to end, then stop waiting.
        if (now - abandonedAt() >= ABANDON_GRACE_MS) return this.timedOut(session, command, '\n[The call was abandoned; the command was interrupted (C-c).]');
        await session.waitForChange(abandonedAt() + ABANDON_GRACE_MS - now);
        continue;
      }
      const lastChange = Math.max(start, session.lastOutputAt);
      let next: number;
      if (timeout === null) {
        if (now - lastChange >= noOutputTimeoutMs) {
          return this.timedOut(session, command, `\n[The command has no new output after ${seconds(noOutputTimeoutMs)} seconds. ${TIMEOUT_MESSAGE}]`);
        }
        if (now - start >= maxWaitMs) {
          return this.timedOut(session, command, `\n[The command is still running after ${seconds(maxWaitMs)} seconds and keeps producing output. ${TIMEOUT_MESSAGE}]`);
        }
        next = Math.min(lastChange + noOutputTimeoutMs, start + maxWaitMs);
      } else {
        if (now - start >= timeout * 1000) {
          return this.timedOut(session, command, `\n[The command timed out after ${pyFloat(timeout)} seconds. ${TIMEOUT_MESSAGE}]`);
        }
        next = start + timeout * 1000;
      }
      await session.waitForChange(next - now);
    }
  }

  private completed(session: BashSession, command: string, specialKey: boolean): TerminalObservation {
    const end = session.lastEnd;
    const exitCode = end?.exitCode ?? -1;
    const suffix = specialKey
      ? `\n[The command completed with exit code ${exitCode}. CTRL+${command.at(-1)!.toUpperCase()} was sent.]`
      : `\n[The command completed with exit code ${exitCode}.]`;
    return this.ended(session, command, exitCode, {
      pid: end?.backgroundPid ?? -1,
      working_dir: end?.cwd ?? session.cwd,
      py_interpreter_path: end?.pythonPath ?? '',
      suffix,
    });
  }

  /** The shell itself ended (`exit`, killed): the command's end, and a new session next time. */
  private exited(session: BashSession, command: string): TerminalObservation {
    const exitCode = session.exitCode;
    const cwd = session.cwd;
    this.session = null;
    return this.ended(session, command, exitCode, {
      working_dir: cwd,
      suffix:
        `\n[The command completed with exit code ${exitCode}.]` +
        '\n[The shell exited, which ended the terminal session. The next command starts a new session in the working directory; environment variables and other session state are lost.]',
    });
  }

  /** The observation of a command that is over: its output, exit code and where the shell is. */
  private ended(session: BashSession, command: string, exitCode: number, metadata: Partial<CmdOutputMetadata>): TerminalObservation {
    const { text, dir } = this.render(session.takeOutput());
    this.unreported = false;
    this.partial = false;
    return terminalObservation(text, {
      command,
      exit_code: exitCode,
      metadata: cmdOutputMetadata({ exit_code: exitCode, username: this.environment.username, hostname: this.environment.hostname, ...metadata }),
      full_output_save_dir: dir,
    });
  }

  private timedOut(session: BashSession, command: string, suffix: string): TerminalObservation {
    const metadata: CmdOutputMetadata = cmdOutputMetadata({ prefix: this.partial ? CONTINUE_PREFIX : '', suffix });
    const { text, dir } = this.render(session.takeOutput());
    this.partial = true;
    return terminalObservation(text, { command, exit_code: -1, timeout: true, metadata, full_output_save_dir: dir });
  }

  private notExecuted(session: BashSession, command: string): TerminalObservation {
    const metadata = cmdOutputMetadata({
      prefix: this.partial ? CONTINUE_PREFIX : '',
      suffix:
        `\n[Your command "${command}" is NOT executed. The previous command is still running - You CANNOT send new commands ` +
        `until the previous command is completed. By setting \`is_input\` to \`true\`, you can interact with the current process: ${TIMEOUT_MESSAGE}]`,
    });
    const { text, dir } = this.render(session.takeOutput());
    this.partial = true;
    return terminalObservation(text, { command, exit_code: -1, is_error: true, metadata, full_output_save_dir: dir });
  }

  /** The output as the LLM may see it: trimmed, and cut to MAX_CMD_OUTPUT_SIZE with the whole saved to a file. */
  private render(captured: CapturedOutput): { text: string; dir: string | null } {
    if (captured.full !== null) {
      const text = captured.full.replace(TTY_NOISE, '').replace(/^\n+/, '').trimEnd();
      if (text.length <= MAX_CMD_OUTPUT_SIZE) return { text, dir: null };
      let file: string | undefined;
      try {
        file = this.environment.nextOutputFile();
        writeFileSync(file, text, { mode: 0o600 });
      } catch {
        file = undefined;
      }
      return { text: truncateMiddle({ head: text, tail: text }, MAX_CMD_OUTPUT_SIZE, DEFAULT_TRUNCATE_NOTICE, file), dir: file ? this.environment.observationDir : null };
    }
    const head = captured.head.replace(TTY_NOISE, '').replace(/^\n+/, '');
    const tail = captured.tail.replace(TTY_NOISE, '').trimEnd();
    return { text: truncateMiddle({ head, tail }, MAX_CMD_OUTPUT_SIZE, DEFAULT_TRUNCATE_NOTICE, captured.file ?? undefined), dir: this.environment.observationDir };
  }
}
