import { BashCommand, BashEvent, BashOutput, ExecuteBashRequest } from '@berth/contracts/executor';
import { ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { Activity } from '../activity';
import { HttpError, SerialQueue } from '../errors';
import { SandboxPaths } from '../sandbox-paths';
import { BashEventStore, bashEventId, bashTimestamp } from './bash-event-store';
import { logLine } from '../log';

/** A chunk is emitted as soon as this many characters of one stream are buffered (OpenHands: 1 MiB). */
export const MAX_CHUNK_CHARS = 1024 * 1024;
/** …and buffered output is emitted at least this often, so pollers see progress. */
const FLUSH_MS = 100;
/** After SIGTERM at the timeout, the process group gets this long before SIGKILL. */
const KILL_GRACE_MS = 1000;
/** Output waiting to be written to the event log beyond which the command's pipes are paused. */
const MAX_PENDING_CHARS = 8 * MAX_CHUNK_CHARS;
const SHELL = '/bin/bash';
/** Sessions remembered for the clean-up at exit (the oldest are forgotten beyond). */
const MAX_REMEMBERED_SESSIONS = 10_000;
/** setTimeout's limit (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export type BashSubscriber = (event: BashEvent) => void;

export interface BashServiceOptions {
  paths: SandboxPaths;
  store: BashEventStore;
  env: Record<string, string>;
  activity: Activity;
  /** Runs before a command first uses a folder (the `git init` of working dirs). */
  prepareDir: (dir: string) => Promise<void>;
}

/** One running command. */
interface Running {
  command: BashCommand;
  child: ChildProcess | null;
  stdout: string;
  stderr: string;
  order: number;
  finished: boolean;
  /** A stop asked for before the shell was spawned, applied once it is. */
  stopRequested: boolean;
  /** Settles when the shell has exited. */
  exited: Promise<void> | null;
}

/** Python's `str(OSError)` for a missing working directory, as OpenHands reports it. */
function missingDirMessage(cwd: string): string {
  return `[Errno 2] No such file or directory: '${cwd}'`;
}

/**
 * The standalone bash service (contract §7.1): each command in a `/bin/bash -c` of its own process
 * group, its output as BashOutput chunks in the durable event log, published to subscribers (the
 * bash-events sockets) once stored.
 */
export class BashService {
  private readonly running = new Map<string, Running>();
  private readonly subscribers = new Set<BashSubscriber>();
  /** Events are stored, then published, in the order they were made. */
  private readonly log = new SerialQueue();
  private pendingChars = 0;
  private readonly paused = new Set<ChildProcess>();
  /** Sessions the commands opened (shell pid → its start time). */
  private readonly sessions = new Map<number, string>();

  constructor(private readonly options: BashServiceOptions) {}

  get runningCount(): number {
    return this.running.size;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  subscribe(subscriber: BashSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** Stores an event, then hands it to every subscriber. */
  private emit(event: BashEvent): Promise<void> {
    const size = event.kind === 'BashOutput' ? (event.stdout?.length ?? 0) + (event.stderr?.length ?? 0) : 0;
    this.pendingChars += size;
    this.options.activity.touch();
    return this.log.run(async () => {
      try {
        await this.options.store.save(event);
      } catch (err) {
        logLine('warn', `cannot store bash event ${event.id}`, err);
      } finally {
        this.pendingChars -= size;
        if (this.pendingChars <= MAX_PENDING_CHARS / 2) this.resumeAll();
      }
      for (const subscriber of this.subscribers) {
        try {
          subscriber(event);
        } catch {
          /* a subscriber's failure is its own */
        }
      }
    });
  }

  private resumeAll(): void {
    for (const child of this.paused) {
      child.stdout?.resume();
      child.stderr?.resume();
    }
    this.paused.clear();
  }

  /** The working directory of a request: absolute or relative to the root, inside the root. */
  private async cwdOf(request: ExecuteBashRequest): Promise<string> {
    const root = this.options.paths.root;
    const cwd = request.cwd === null || request.cwd === '' ? root : isAbsolute(request.cwd) ? request.cwd : resolve(root, request.cwd);
    try {
      return await this.options.paths.requireInside(cwd);
    } catch (err) {
      if (err instanceof HttpError && err.status === 403) throw new HttpError(422, `cwd must be inside the sandbox (${root}): ${request.cwd}`);
      throw err;
    }
  }

  /**
   * `POST /api/bash/start_bash_command`: stores and publishes the BashCommand, then runs it in the
   * background. `done` settles with the command's last BashOutput once that is stored.
   */
  async start(request: ExecuteBashRequest): Promise<{ command: BashCommand; done: Promise<BashOutput> }> {
    const cwd = await this.cwdOf(request);
    const command: BashCommand = {
      id: bashEventId(),
      timestamp: bashTimestamp(),
      command: request.command,
      cwd,
      timeout: request.timeout,
      kind: 'BashCommand',
    };
    const running: Running = { command, child: null, stdout: '', stderr: '', order: 0, finished: false, stopRequested: false, exited: null };
    this.running.set(command.id, running);
    const stored = this.emit(command);
    const done = stored
      .then(() => this.run(running))
      .catch((err: Error) => this.failed(running, err.message))
      .finally(() => this.running.delete(command.id));
    await stored;
    return { command, done };
  }

  private output(running: Running, fields: { stdout?: string | null; stderr?: string | null; exit_code?: number | null; order?: number }): BashOutput {
    return {
      id: bashEventId(),
      timestamp: bashTimestamp(),
      command_id: running.command.id,
      order: fields.order ?? running.order++,
      exit_code: fields.exit_code ?? null,
      stdout: fields.stdout || null,
      stderr: fields.stderr || null,
      kind: 'BashOutput',
    };
  }

  private async failed(running: Running, message: string): Promise<BashOutput> {
    running.finished = true;
    const event = this.output(running, { order: 0, exit_code: -1, stderr: `Error executing command: ${message}` });
    await this.emit(event);
    return event;
  }

  private async run(running: Running): Promise<BashOutput> {
    const { command } = running;
    const cwd = command.cwd!;
    await this.options.prepareDir(cwd);
    // The shell starts in the folder that was checked, held open: one swapped for a symlink since is not followed out.
    const folder = await this.options.paths.openFolder(cwd, cwd).catch(() => null);
    if (!folder) return this.failed(running, missingDirMessage(cwd));

    let child: ChildProcess;
    try {
      child = spawn(SHELL, ['-c', command.command], { cwd: folder.at(), env: this.options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      return this.failed(running, (err as Error).message);
    } finally {
      // Not awaited: the child's events must find their listeners, attached below in this same turn.
      void folder.close();
    }
    running.child = child;
    running.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => {
        if (child.pid === undefined) resolve();
      });
    });
    if (child.pid !== undefined) this.rememberSession(child.pid);
    if (running.stopRequested) void this.stop(command.id);

    return new Promise<BashOutput>((resolveDone) => {
      const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
      let flushTimer: NodeJS.Timeout | null = null;
      let timedOut = false;
      let giveUpTimer: NodeJS.Timeout | null = null;
      let spawnError: Error | null = null;
      let exitCode: number | null = null;
      let exited = false;

      const flush = () => {
        flushTimer = null;
        if (!running.stdout && !running.stderr) return;
        const event = this.output(running, { stdout: running.stdout, stderr: running.stderr });
        running.stdout = '';
        running.stderr = '';
        void this.emit(event);
      };

      const onData = (stream: 'stdout' | 'stderr', chunk: Buffer) => {
        running[stream] += decoders[stream].write(chunk);
        while (running[stream].length >= MAX_CHUNK_CHARS) {
          // Never cut a surrogate pair in two.
          let cut = MAX_CHUNK_CHARS;
          const code = running[stream].charCodeAt(cut - 1);
          if (code >= 0xd800 && code <= 0xdbff) cut--;
          const piece = running[stream].slice(0, cut);
          running[stream] = running[stream].slice(cut);
          void this.emit(this.output(running, { [stream]: piece }));
        }
        if (this.pendingChars > MAX_PENDING_CHARS && !this.paused.has(child)) {
          this.paused.add(child);
          child.stdout?.pause();
          child.stderr?.pause();
        }
        if (!flushTimer && (running.stdout || running.stderr)) flushTimer = setTimeout(flush, FLUSH_MS);
      };
      child.stdout!.on('data', (chunk: Buffer) => onData('stdout', chunk));
      child.stderr!.on('data', (chunk: Buffer) => onData('stderr', chunk));

      const signalGroup = (signal: NodeJS.Signals) => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          /* already gone */
        }
      };

      const timeoutTimer = setTimeout(
        () => {
          timedOut = true;
          // SIGTERM first so the command's traps can run, SIGKILL a second later.
          signalGroup('SIGTERM');
          // The SIGKILL goes out even if the shell has ended by then: whatever in its group
          // survived SIGTERM dies too.
          setTimeout(() => {
            signalGroup('SIGKILL');
            // Something outside the group may still hold the pipes: stop waiting for them.
            if (!finished) giveUpTimer ??= setTimeout(finish, KILL_GRACE_MS);
          }, KILL_GRACE_MS);
        },
        Math.min(Math.max(0, command.timeout * 1000), MAX_TIMER_MS),
      );

      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        running.finished = true;
        for (const timer of [flushTimer, timeoutTimer, giveUpTimer]) if (timer) clearTimeout(timer);
        this.paused.delete(child);
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (spawnError && !exited) {
          void this.failed(running, spawnError.message).then(resolveDone);
          return;
        }
        running.stdout += decoders.stdout.end();
        running.stderr += decoders.stderr.end();
        const event = this.output(running, { stdout: running.stdout, stderr: running.stderr, exit_code: timedOut ? -1 : exitCode });
        running.stdout = '';
        running.stderr = '';
        void this.emit(event).then(() => resolveDone(event));
      };

      child.on('error', (err) => {
        // Only a failed spawn ends the command here (a failed kill of a live one does not).
        if (exited || child.pid !== undefined) return;
        spawnError = err;
        finish();
      });
      child.on('exit', (code, signal) => {
        exited = true;
        // A signal ends it with -signal, as Python's returncode says.
        exitCode = code ?? (signal ? -(osConstants.signals[signal] ?? 1) : -1);
        // Ended by its timeout: the pipes get a moment to drain.
        if (timedOut) giveUpTimer ??= setTimeout(finish, KILL_GRACE_MS);
      });
      // Done when the shell has exited and its pipes are closed (whatever it left running may hold
      // them open until the timeout, as in OpenHands).
      child.on('close', finish);
    });
  }

  /**
   * `POST /api/bash/bash_commands/{id}/stop`: SIGTERM to the command's process group (its traps
   * run), SIGKILL a second later if it is still there; its own run then stores its last output
   * (exit code -signal). False when no such command is running (finished, or unknown).
   */
  async stop(commandId: string): Promise<boolean> {
    const running = this.running.get(commandId);
    if (!running) return false;
    if (running.finished) return true;
    const child = running.child;
    if (!child || !running.exited) {
      running.stopRequested = true;
      return true;
    }
    const signalGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        /* already gone */
      }
    };
    const exitedWithin = (ms: number) =>
      Promise.race([running.exited!.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
    if (child.exitCode !== null || child.signalCode !== null) return true;
    signalGroup('SIGTERM');
    if (!(await exitedWithin(KILL_GRACE_MS))) {
      signalGroup('SIGKILL');
      await exitedWithin(KILL_GRACE_MS);
    }
    return true;
  }

  /** Notes a command's session (its shell's pid) and when it started, to find what it leaves behind. */
  private rememberSession(pid: number): void {
    const started = processStartTime(pid);
    if (started === null) return;
    this.sessions.set(pid, started);
    if (this.sessions.size > MAX_REMEMBERED_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
  }

  /**
   * What finished commands left running in the background (`server &`, `nohup …`) goes with the
   * executor: every process of a session one of its commands opened. A session id whose leader pid
   * now belongs to another process (pid reuse) is left alone.
   */
  private killLeftovers(): void {
    if (this.sessions.size === 0) return;
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return;
    }
    const reused = new Set<number>();
    for (const [sid, started] of this.sessions) {
      const now = processStartTime(sid);
      if (now !== null && now !== started) reused.add(sid);
    }
    for (const entry of entries) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = processStat(Number(entry));
      if (!stat || !this.sessions.has(stat.sid) || reused.has(stat.sid)) continue;
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /**
   * Process exit: every running command's process group is killed, and its last output stored
   * (synchronously) with exit code -1, so pollers and a restarted executor see it ended.
   */
  killAll(): void {
    for (const running of this.running.values()) {
      if (running.finished) continue;
      running.finished = true;
      if (running.child?.pid !== undefined) {
        try {
          process.kill(-running.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      const note = 'The sandbox executor stopped while the command was running.';
      const event = this.output(running, { stdout: running.stdout, stderr: running.stderr ? `${running.stderr}\n${note}` : note, exit_code: -1 });
      try {
        this.options.store.saveNow(event);
      } catch {
        /* exiting anyway */
      }
    }
    this.running.clear();
    this.killLeftovers();
  }
}

/** Session id and start time (clock ticks after boot) of a process, from /proc; null if gone. */
function processStat(pid: number): { sid: number; started: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { sid: Number(fields[3]), started: fields[19] };
  } catch {
    return null;
  }
}

function processStartTime(pid: number): string | null {
  return processStat(pid)?.started ?? null;
}
