import {
  ExecuteToolRequestSchema,
  ExecutorToolName,
  FileEditorAction,
  formatZodIssues,
  isExecutorToolName,
  isToolName,
  parseToolArguments,
  parseUuid,
  TaskTrackerAction,
  TerminalAction,
  ToolObservation,
} from '@berth/contracts/executor';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { Activity } from './activity';
import { BashEventStore } from './bash/bash-event-store';
import { BashService } from './bash/bash-service';
import { ExecutorConfig } from './config';
import { HttpError } from './errors';
import { FileEditor } from './file-editor/file-editor';
import { ArchiveService } from './files/archive';
import { FileService } from './files/files';
import { GitService } from './git/git';
import { ProjectSkillReader } from './project-skills';
import { McpServers } from './mcp/mcp-servers';
import { SandboxPaths } from './sandbox-paths';
import { TaskTracker } from './task-tracker';
import { TerminalTool } from './terminal/terminal-tool';

/** Environment variables the shell inherits from the executor (nothing else: no token). */
const INHERITED_ENV = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ'];

/** One conversation's tools in this sandbox. */
interface ConversationTools {
  terminal: TerminalTool;
  editor: FileEditor;
  tasks: TaskTracker;
}

function currentUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return typeof process.getuid === 'function' ? String(process.getuid()) : null;
  }
}

/**
 * Everything the executor serves for one sandbox: the tools of every conversation, and the
 * workspace API (files, bash commands and their events, git), with the activity the idle clock reads.
 */
export class Executor {
  readonly paths: SandboxPaths;
  readonly activity = new Activity();
  readonly files: FileService;
  readonly archives: ArchiveService;
  readonly git: GitService;
  readonly projectSkills: ProjectSkillReader;
  readonly bashEvents: BashEventStore;
  readonly bash: BashService;
  /** The conversations' MCP servers, children of this executor inside the sandbox. */
  readonly mcp: McpServers;
  private readonly conversations = new Map<string, ConversationTools>();
  /** The environment of every shell: built from scratch, nothing inherited but a few locale variables. */
  readonly shellEnv: Record<string, string>;
  private readonly username = currentUser();
  private readonly hostname = hostname().split('.')[0] || null;

  constructor(private readonly config: ExecutorConfig) {
    this.paths = new SandboxPaths(config.root);
    const env: Record<string, string> = {};
    for (const name of INHERITED_ENV) if (process.env[name]) env[name] = process.env[name]!;
    env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
    Object.assign(env, config.sandboxEnv, {
      HOME: config.root,
      TERM: 'dumb',
      PS1: '',
      // No tty: pagers would wait for a keypress that never comes.
      PAGER: 'cat',
      GIT_PAGER: 'cat',
      // Python buffers a pipe's output; unbuffered, prompts and progress show up as printed.
      PYTHONUNBUFFERED: '1',
      // git never looks for a repository above the sandbox (the host's checkout, say).
      GIT_CEILING_DIRECTORIES: dirname(config.root),
    });
    this.shellEnv = env;
    this.files = new FileService(this.paths, config.maxUploadBytes);
    this.git = new GitService(this.paths, env);
    this.projectSkills = new ProjectSkillReader(this.paths);
    this.archives = new ArchiveService(this.paths, this.git);
    this.bashEvents = new BashEventStore(this.paths.internal('bash_events'));
    this.bash = new BashService({
      paths: this.paths,
      store: this.bashEvents,
      env,
      activity: this.activity,
      prepareDir: (dir) => this.git.ensureRepo(dir),
    });
    this.mcp = new McpServers(env, (dir) => this.prepareWorkingDir(dir));
  }

  /** Terminal tool commands running now. */
  get runningTerminals(): number {
    let count = 0;
    for (const tools of this.conversations.values()) if (tools.terminal.busy) count++;
    return count;
  }

  /** `POST /api/tools/execute`: validates the request, runs the tool, returns its observation. */
  async execute(body: unknown, abandoned?: AbortSignal): Promise<{ observation: ToolObservation }> {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(422, 'The request body must be a JSON object');
    const request = ExecuteToolRequestSchema.safeParse(body);
    if (!request.success) throw new HttpError(422, `Invalid request: ${formatZodIssues(request.error)}`);
    const { tool, action } = request.data;
    if (!isExecutorToolName(tool)) {
      throw new HttpError(
        422,
        isToolName(tool)
          ? `Tool '${tool}' is not executed in the sandbox (the agent answers it itself)`
          : `Unknown tool '${tool}'. The sandbox executes: terminal, file_editor, task_tracker`,
      );
    }
    const parsed = parseToolArguments(tool, action);
    if (!parsed.ok) throw new HttpError(422, parsed.error);
    const env = request.data.env;
    if (env && Object.keys(env).length && tool !== 'terminal') throw new HttpError(422, `env applies to the terminal tool only, not to '${tool}'`);
    const conversationId = parseUuid(request.data.conversation_id)!;
    const workingDir = await this.prepareWorkingDir(request.data.working_dir);
    const tools = this.toolsOf(conversationId);
    return { observation: await this.run(tools, tool, parsed.action, workingDir, env ?? {}, abandoned) };
  }

  private run(
    tools: ConversationTools,
    tool: ExecutorToolName,
    action: unknown,
    workingDir: string,
    env: Record<string, string>,
    abandoned?: AbortSignal,
  ): Promise<ToolObservation> {
    switch (tool) {
      case 'terminal':
        return tools.terminal.execute(action as TerminalAction, workingDir, abandoned, env);
      case 'file_editor':
        return tools.editor.execute(action as FileEditorAction, workingDir);
      case 'task_tracker':
        return tools.tasks.execute(action as TaskTrackerAction);
    }
  }

  /** `POST /api/sessions/{id}/close`: kills the conversation's shell and forgets its state (the task list stays on disk). */
  closeConversation(rawId: string): void {
    const id = parseUuid(rawId);
    if (!id) throw new HttpError(422, 'conversation_id must be a UUID');
    const tools = this.conversations.get(id);
    this.conversations.delete(id);
    tools?.terminal.close();
    this.mcp.closeConversation(id);
    rmSync(this.paths.internal('run', id), { recursive: true, force: true });
  }

  /** Kills every shell's and bash command's process group now (shutdown, process exit). */
  killAll(): void {
    for (const tools of this.conversations.values()) tools.terminal.killNow();
    this.bash.killAll();
    this.mcp.closeAll();
  }

  /** Closes every conversation (SIGTERM). */
  closeAll(): void {
    for (const id of [...this.conversations.keys()]) this.closeConversation(id);
  }

  /** The working directory must resolve inside the sandbox; it is created when missing. */
  async prepareWorkingDir(workingDir: string): Promise<string> {
    const { real, inside } = await this.paths.locate(workingDir).catch((err: Error) => {
      throw new HttpError(422, `working_dir ${workingDir} cannot be used: ${err.message}`);
    });
    if (!inside) {
      throw new HttpError(422, `working_dir ${workingDir} is outside the sandbox${real !== workingDir ? ` (it resolves to ${real})` : ''}: it must be under ${this.paths.root}`);
    }
    try {
      await mkdir(real, { recursive: true });
    } catch (err) {
      throw new HttpError(422, `working_dir ${workingDir} cannot be created: ${(err as Error).message}`);
    }
    if (!(await stat(real)).isDirectory()) throw new HttpError(422, `working_dir ${workingDir} is not a directory`);
    await this.git.ensureRepo(real);
    return real;
  }

  private toolsOf(id: string): ConversationTools {
    let tools = this.conversations.get(id);
    if (tools) return tools;
    const observationDir = this.paths.internal('observations', id);
    let next = 0;
    const nextOutputFile = () => {
      mkdirSync(observationDir, { recursive: true, mode: 0o700 });
      if (next === 0) {
        // Numbers continue across executor restarts.
        next = readdirSync(observationDir).reduce((max, name) => Math.max(max, Number(/^(\d+)\.txt$/.exec(name)?.[1] ?? 0)), 0) + 1;
      }
      return join(observationDir, `${next++}.txt`);
    };
    tools = {
      terminal: new TerminalTool({
        env: this.shellEnv,
        runDir: this.paths.internal('run', id),
        observationDir,
        nextOutputFile,
        noOutputTimeoutMs: this.config.noOutputTimeoutMs,
        maxWaitMs: this.config.maxWaitMs,
        username: this.username,
        hostname: this.hostname,
      }),
      editor: new FileEditor(this.paths),
      tasks: new TaskTracker(this.paths.internal('tasks', `${id}.json`)),
    };
    this.conversations.set(id, tools);
    return tools;
  }
}
