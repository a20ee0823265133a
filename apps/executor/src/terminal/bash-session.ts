import { ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, unlinkSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { OutputBuffer } from './output-buffer';

/** What the shell reported when a command line ended (from its prompt hook). */
export interface CommandEnd {
  exitCode: number;
  /** `$!`: the last background job's pid, -1 if none. */
  backgroundPid: number;
  cwd: string;
  /** `command -v python`, '' when there is none. */
  pythonPath: string;
}

export interface BashSessionOptions {
  cwd: string;
  env: Record<string, string>;
  /** Private folder for the per-command stdin FIFOs. */
  runDir: string;
  /** Where an output too large for memory is written (see OutputBuffer). */
  spillFile: () => string;
  shell?: string;
  startTimeoutMs?: number;
}

/** Quotes any text for bash as `$'…'` (NUL bytes cannot be passed to a shell and are dropped). */
export function bashQuote(text: string): string {
  const body = text
    .replace(/\0/g, '')
    .replace(/\\/g, '\\\\')
    .replace(/'/g, "\\'")
    .replace(/[\x01-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `$'${body}'`;
}

/** Shell variable names (what `export` takes). */
const ENV_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function mkfifo(path: string): Promise<boolean> {
  return new Promise((resolve) => execFile('mkfifo', ['-m', '600', path], { timeout: 5000 }, (err) => resolve(!err)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * One long-lived interactive bash (no tty, no job control, no readline) in its own process group,
 * fed command lines on its stdin. Each command line is `{ eval $'<command>'; } < <fifo>`: the
 * command runs in the shell itself, so `cd`, `export`, functions and aliases persist; its stdin is
 * a FIFO of its own, so input can be typed into it and closed (EOF) without touching the stream
 * the shell reads its commands from. `PROMPT_COMMAND` prints a marker carrying a per-session nonce,
 * the line's number, `$?`, `$!`, `$PWD` and the Python interpreter after every command line — also
 * after one that SIGINT cut short, as an interactive shell gives its prompt back then. stderr is
 * merged into stdout by the shell itself (`exec 2>&1`), so the two interleave exactly as produced.
 */
export class BashSession {
  readonly pid: number;
  /** Output since the last `takeOutput()` (also what background jobs print between commands). */
  readonly output: OutputBuffer;
  /** When output last arrived (ms since epoch). */
  lastOutputAt = 0;
  /** Set once the shell is gone. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  /** The end of the last command line that completed. */
  lastEnd: CommandEnd | null = null;
  /** The working directory as last reported by the shell. */
  cwd: string;

  private readonly child: ChildProcessWithoutNullStreams;
  private readonly nonce = randomBytes(12).toString('hex');
  private readonly startToken: string;
  private readonly endToken: string;
  private readonly decoder = new StringDecoder('utf8');
  private carry = '';
  private seq = 0;
  private ready = false;
  private current: { seq: number; fifo: string | null; fd: number | null; inputClosed: boolean } | null = null;
  private waiters = new Set<() => void>();
  private stdoutEnded = false;
  /** The shell is gone and its last output read. */
  private settled = false;

  private constructor(private readonly options: BashSessionOptions) {
    this.cwd = options.cwd;
    this.output = new OutputBuffer(options.spillFile);
    this.startToken = `\x1e${this.nonce}\x1f`;
    this.endToken = `\x1f${this.nonce}\x1e\n`;
    this.child = spawn(options.shell ?? 'bash', ['--noprofile', '--norc', '--noediting', '-i'], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    this.child.stdout.on('data', (chunk: Buffer) => this.onData(this.decoder.write(chunk)));
    this.child.stdout.on('end', () => {
      this.stdoutEnded = true;
      this.onData(this.decoder.end());
      this.notify();
    });
    // Only bash's own start-up chatter arrives here ("no job control in this shell"): the
    // bootstrap line sends the rest to stdout.
    this.child.stderr.on('data', () => undefined);
    this.child.stdin.on('error', () => undefined);
    this.child.on('error', (err) => {
      this.startError = err;
      this.markExited(null, null);
    });
    this.child.on('exit', (code, signal) => {
      this.markExited(code, signal);
      // Whatever the shell left behind (background jobs) goes with it, as when a terminal closes.
      this.killGroup('SIGKILL');
    });
  }

  private startError: Error | null = null;

  /** Starts a shell in `cwd` and waits for its first prompt. */
  static async start(options: BashSessionOptions): Promise<BashSession> {
    const session = new BashSession(options);
    session.write(session.bootstrapLine());
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    while (!session.ready) {
      if (session.exit) {
        throw new Error(session.startError ? session.startError.message : `bash exited during start-up (${session.exit.signal ?? `exit code ${session.exit.code}`})`);
      }
      if (Date.now() > deadline) {
        session.kill();
        throw new Error('bash did not become ready in time');
      }
      await session.waitForChange(deadline - Date.now());
    }
    // The start-up lines are no command's output.
    session.output.discard();
    return session;
  }

  get running(): boolean {
    return this.current !== null && !this.settled;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  /** Whether the running command's stdin can still take input. */
  get acceptsInput(): boolean {
    return !!this.current && this.current.fd !== null && !this.current.inputClosed;
  }

  /**
   * Sends a command line; it runs until its marker arrives (see `running`). `env` is exported for
   * this line only: the line itself (read from the shell's stdin, never in an argv) saves what the
   * names held before and exports the values with the `export` builtin; the prompt hook, which runs
   * after every line (after an interrupted one too), unsets them and restores what was there.
   */
  async run(command: string, env: Record<string, string> = {}): Promise<void> {
    if (this.current) throw new Error('a command is already running');
    if (!this.alive) throw new Error('the shell has exited');
    const exports = BashSession.envPart(env);
    const seq = ++this.seq;
    const fifo = `${this.options.runDir}/stdin.${seq}`;
    let fd: number | null = null;
    let stdinPath = '/dev/null';
    this.removeFifo(fifo); // left over by an executor that died
    if (await mkfifo(fifo)) {
      try {
        // Read-write, so neither side's open blocks; closing it is the command's EOF.
        fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
        stdinPath = fifo;
      } catch {
        fd = null;
      }
    }
    this.current = { seq, fifo: fd === null ? null : fifo, fd, inputClosed: false };
    if (fd === null) this.removeFifo(fifo);
    this.lastOutputAt = Date.now();
    // `__berth_restore` gives the command the previous command's `$?`, as at a real prompt.
    this.write(`__berth_n=${seq}; ${exports}__berth_restore; { eval ${bashQuote(command)}; } < ${bashQuote(stdinPath)}\n`);
  }

  /** The exports of a line's own variables, and what undoes them (`__berth_unenv`, run by the prompt hook). */
  private static envPart(env: Record<string, string>): string {
    const names = Object.keys(env).filter((name) => ENV_NAME.test(name));
    if (!names.length) return '';
    const list = names.join(' ');
    // `declare -p` (in a subshell forked before any export) prints the old values as code that recreates them.
    return `__berth_unenv="unset ${list}; $(declare -p ${list} 2>/dev/null)"; export ${names.map((n) => `${n}=${bashQuote(env[n])}`).join(' ')}; `;
  }

  /** Writes to the running command's stdin. */
  async sendInput(data: string): Promise<void> {
    const current = this.current;
    if (!current || current.fd === null || current.inputClosed) throw new Error('the running command has no open stdin');
    let buf = Buffer.from(data, 'utf8');
    const deadline = Date.now() + 10_000;
    while (buf.length > 0) {
      try {
        const n = writeSync(current.fd, buf);
        buf = buf.subarray(n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        if (Date.now() > deadline) throw new Error('the running command does not read its input');
        await sleep(20);
        if (this.current !== current || current.fd === null) throw new Error('the command ended before it read all the input');
      }
    }
  }

  /** Closes the running command's stdin: it reads EOF (Ctrl+D). */
  closeInput(): void {
    const current = this.current;
    if (!current || current.inputClosed) return;
    current.inputClosed = true;
    if (current.fd !== null) {
      try {
        closeSync(current.fd);
      } catch {
        /* already closed */
      }
      current.fd = null;
    }
  }

  /** Signals the shell's process group: the shell and its foreground command (background jobs ignore SIGINT). */
  killGroup(signal: NodeJS.Signals): boolean {
    if (this.pid <= 0) return false;
    try {
      process.kill(-this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  interrupt(): boolean {
    return this.killGroup('SIGINT');
  }

  /** Kills the shell and everything in its process group. */
  kill(): void {
    this.killGroup('SIGKILL');
    this.finishCurrent();
  }

  /** Hands over the output gathered since the last call. */
  takeOutput() {
    return this.output.take();
  }

  /** Resolves on new output, a command's end, the shell's exit — or after `ms`. */
  waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiters.add(done);
    });
  }

  /** Ends every pending `waitForChange` now. */
  wake(): void {
    this.notify();
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private write(line: string): void {
    if (this.child.stdin.writable) this.child.stdin.write(line);
  }

  private bootstrapLine(): string {
    const start = `\\036${this.nonce}\\037`;
    const end = `\\037${this.nonce}\\036`;
    // One line: every line after PROMPT_COMMAND is set prints a marker.
    return (
      [
        'exec 2>&1',
        'set +H +o history',
        'unset HISTFILE PROMPT_COMMAND',
        "PS1=''",
        "PS2=''",
        '__berth_n=0',
        '__berth_rc=0',
        "__berth_unenv=''",
        '__berth_restore() { return "$__berth_rc"; }',
        `__berth_prompt() { printf '${start}%s\\037%s\\037%s\\037%s\\037%s${end}\\n' "$__berth_n" "$__berth_rc" "$!" "$(command -v python 2>/dev/null)" "$PWD"; }`,
        // A line's own variables (run's `env`) are gone before its end is reported.
        `PROMPT_COMMAND='__berth_rc=$?; eval "$__berth_unenv"; __berth_unenv=; __berth_prompt'`,
      ].join('; ') + '\n'
    );
  }

  private onData(text: string): void {
    if (!text && !this.carry) return;
    let buf = this.carry + text.replace(/\r/g, '');
    this.carry = '';
    for (;;) {
      const at = buf.indexOf(this.startToken);
      if (at === -1) {
        // Hold back what could be the start of a marker split across reads.
        const hold = this.partialStart(buf);
        this.emit(buf.slice(0, buf.length - hold));
        this.carry = buf.slice(buf.length - hold);
        break;
      }
      this.emit(buf.slice(0, at));
      const end = buf.indexOf(this.endToken, at);
      if (end === -1) {
        if (buf.length - at > 65_536) {
          // Not a marker after all (or a broken one): it is output.
          this.emit(buf.slice(at));
        } else {
          this.carry = buf.slice(at);
        }
        break;
      }
      this.onMarker(buf.slice(at + this.startToken.length, end));
      buf = buf.slice(end + this.endToken.length);
    }
    this.notify();
  }

  private partialStart(buf: string): number {
    const max = Math.min(buf.length, this.startToken.length - 1);
    for (let k = max; k > 0; k--) if (this.startToken.startsWith(buf.slice(buf.length - k))) return k;
    return 0;
  }

  private emit(text: string): void {
    if (!text) return;
    this.output.append(text);
    this.lastOutputAt = Date.now();
  }

  private onMarker(body: string): void {
    const [seqText, rcText, bgText, python, ...cwdParts] = body.split('\x1f');
    const seq = Number(seqText);
    const cwd = cwdParts.join('\x1f');
    if (cwd) this.cwd = cwd;
    if (!this.ready) {
      if (seq === 0) this.ready = true;
      return;
    }
    // A marker for a line other than the running one (an interrupt at an idle prompt) is ignored.
    if (!this.current || seq !== this.current.seq) return;
    const bg = Number(bgText);
    this.lastEnd = {
      exitCode: Number.isInteger(Number(rcText)) && rcText !== '' ? Number(rcText) : -1,
      backgroundPid: bgText && Number.isInteger(bg) ? bg : -1,
      cwd: this.cwd,
      pythonPath: python ?? '',
    };
    this.finishCurrent();
  }

  private finishCurrent(): void {
    const current = this.current;
    if (!current) return;
    this.current = null;
    if (current.fd !== null) {
      try {
        closeSync(current.fd);
      } catch {
        /* closed */
      }
    }
    if (current.fifo) this.removeFifo(current.fifo);
  }

  private removeFifo(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      /* gone */
    }
  }

  private markExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit) return;
    this.exit = { code, signal };
    const finish = () => {
      if (this.settled) return;
      this.settled = true;
      if (this.carry) {
        this.emit(this.carry);
        this.carry = '';
      }
      this.finishCurrent();
      this.notify();
    };
    // Let the last output drain (stdout may stay open in a background job the group kill reaches).
    if (this.stdoutEnded) finish();
    else {
      const timer = setTimeout(finish, 200);
      this.child.stdout.once('end', () => {
        clearTimeout(timer);
        finish();
      });
    }
  }

  /** The exit status as bash would report it for the shell itself. */
  get exitCode(): number {
    if (!this.exit) return -1;
    if (this.exit.code !== null) return this.exit.code;
    const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
    return 128 + (this.exit.signal ? signals[this.exit.signal] ?? 0 : 0);
  }
}
