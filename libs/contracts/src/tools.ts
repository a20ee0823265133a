import { z } from 'zod';
import type { ImageContent, TextContent } from './events';
import { parseUuid } from './ids';

/**
 * The agent tools (contract §7.2): the arguments the LLM sends (zod, validated by the executor and
 * the worker), the OpenAI function definitions the worker sends to the LLM, the ToolDefinition JSON
 * that `SystemPromptEvent.tools` lists, and the observation shapes the executor answers — all as
 * OpenHands (software-agent-sdk 1.43) writes them.
 */

export const TOOL_NAMES = ['terminal', 'file_editor', 'task_tracker', 'finish', 'think'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];
/** Tools that run inside the sandbox (`POST /api/tools/execute`); `finish` and `think` run in the worker. */
export const EXECUTOR_TOOL_NAMES = ['terminal', 'file_editor', 'task_tracker'] as const;
export type ExecutorToolName = (typeof EXECUTOR_TOOL_NAMES)[number];

export function isToolName(name: unknown): name is ToolName {
  return typeof name === 'string' && (TOOL_NAMES as readonly string[]).includes(name);
}
export function isExecutorToolName(name: unknown): name is ExecutorToolName {
  return typeof name === 'string' && (EXECUTOR_TOOL_NAMES as readonly string[]).includes(name);
}

// ---------------------------------------------------------------------------------------------
// Content helpers

/** `TextContent` as OpenHands serializes it inside observations. */
export function textContent(text: string): TextContent {
  return { cache_prompt: false, type: 'text', text };
}
export function imageContent(imageUrls: string[]): ImageContent {
  return { cache_prompt: false, type: 'image', image_urls: imageUrls };
}

// ---------------------------------------------------------------------------------------------
// Argument repair, as the SDK's `fix_malformed_tool_arguments` and pydantic's lax mode do:
// "true"/"false" for booleans, numeric strings for numbers, JSON-encoded arrays, strings sent as
// an array of chunks.

function laxBoolean(v: unknown): unknown {
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'true' || s === '1' || s === 'yes') return true;
    if (s === 'false' || s === '0' || s === 'no') return false;
  }
  return v;
}
function laxNumber(v: unknown): unknown {
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return v;
}
function jsonArray(v: unknown): unknown {
  if (typeof v === 'string' && v.trim().startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(v);
      if (Array.isArray(parsed)) return parsed;
    } catch {
      /* left as is: validation reports it */
    }
  }
  return v;
}
function joinedChunks(v: unknown): unknown {
  return Array.isArray(v) && v.length > 0 && v.every((c) => typeof c === 'string') ? v.join('') : v;
}

const str = (description: string) => z.preprocess(joinedChunks, z.string()).describe(description);
const optStr = (description: string) => z.preprocess(joinedChunks, z.string().nullable()).default(null).describe(description);
const bool = (fallback: boolean, description: string) => z.preprocess(laxBoolean, z.boolean()).default(fallback).describe(description);

// ---------------------------------------------------------------------------------------------
// Descriptions (OpenHands wording; the soft timeout says what the executor does: 30 s)

const NO_CHANGE_TIMEOUT_SECONDS = 30;

const TERMINAL_COMMAND_DESC =
  'The shell command to execute. Can be empty string to view additional logs when the previous exit code is `-1`. ' +
  'Can be a special key name when `is_input` is True: `C-c` (Ctrl+C), `C-d` (Ctrl+D/EOF), `C-z` (Ctrl+Z), or any ' +
  '`C-<letter>` for Ctrl sequences; navigation keys `UP`, `DOWN`, `LEFT`, `RIGHT`, `HOME`, `END`, `PGUP`, `PGDN`; ' +
  'and `TAB`, `ESC`, `BS` (Backspace), `ENTER`. You can only execute one command at a time. Use the ' +
  'platform-appropriate shell syntax described in the tool description when chaining commands.';
const TERMINAL_IS_INPUT_DESC =
  'If True, the command is an input to the running process. If False, the command is executed in the terminal session. Default is False.';
const TERMINAL_TIMEOUT_DESC =
  'Optional. Sets a maximum time limit (in seconds) for running the command. If the command takes longer than this limit, ' +
  'you’ll be asked whether to continue or stop it. If you don’t set a value, the command will instead pause and ask for ' +
  `confirmation when it produces no new output for ${NO_CHANGE_TIMEOUT_SECONDS} seconds. Use a higher value if the command is ` +
  'expected to take a long time (like installation or testing), or if it has a known fixed duration (like sleep).';
const TERMINAL_RESET_DESC =
  'If True, reset the terminal by creating a new session. Use this only when the terminal becomes unresponsive. Note that ' +
  'all previously set environment variables and session state will be lost after reset. Cannot be used with is_input=True.';

export const TERMINAL_TOOL_DESCRIPTION = [
  'Execute a shell command in the terminal within a persistent shell session.',
  '',
  '',
  '### Command Execution',
  '* One command at a time: You can only execute one shell command at a time.',
  '  If you need to run multiple commands sequentially, use `&&` or `;`.',
  '* Persistent session: Environment variables, virtual environments, and',
  '  working directory changes persist across commands.',
  `* Soft timeout: Commands pause for confirmation after ${NO_CHANGE_TIMEOUT_SECONDS} seconds without`,
  '  new output unless you provide a longer `timeout`.',
  '* Shell options: Do NOT use `set -e`, `set -eu`, or `set -euo pipefail`.',
  '  The runtime may not support them reliably.',
  '',
  '### Long-running Commands',
  '* For commands that may run indefinitely, run them in the background and',
  '  redirect output to a file, e.g. `python3 app.py > server.log 2>&1 &`.',
  '* For long-running commands, set the `timeout` parameter accordingly.',
  '* If a command returns exit code `-1`, it hit the soft timeout and is',
  '  still running. With `is_input=true`, you can:',
  '  - Send empty `command` to retrieve additional logs',
  '  - Send text to STDIN of the running process',
  '  - Send control commands like `C-c`, `C-d`, or `C-z`',
  '  - Send navigation keys like `UP`, `DOWN`, `LEFT`, `RIGHT`, `TAB`,',
  '    `ESC`, `BS`, `HOME`, `END`, `PGUP`, and `PGDN`',
  '  - Send any `C-<letter>` Ctrl sequence such as `C-a`, `C-e`, or `C-l`',
  '',
  '### Best Practices',
  '* Verify a parent directory exists before creating files or directories.',
  '* Prefer absolute paths and avoid excessive use of `cd`.',
  '',
  '### Output Handling',
  '* Large output may be truncated before being returned.',
  '',
  '### Terminal Reset',
  '* Set `reset=true` to create a fresh terminal session if the current one',
  '  becomes unresponsive.',
  '* Resetting the terminal clears environment variables, working directory',
  '  changes, and running processes.',
].join('\n');

export const FILE_EDITOR_TOOL_DESCRIPTION = `Custom editing tool for viewing, creating and editing files in plain-text format
* State is persistent across command calls and discussions with the user
* If \`path\` is a text file, \`view\` displays the result of applying \`cat -n\`. If \`path\` is a directory, \`view\` lists non-hidden files and directories up to 2 levels deep
* The \`create\` command cannot be used if the specified \`path\` already exists as a file
* If a \`command\` generates a long output, it will be truncated and marked with \`<response clipped>\`
* The \`undo_edit\` command will revert the last edit made to the file at \`path\`
* This tool can be used for creating and editing files in plain-text format.


Before using this tool:
1. Use the view tool to understand the file's contents and context
2. Verify the directory path is correct (only applicable when creating new files):
   - Use the view tool to verify the parent directory exists and is the correct location

When making edits:
   - Ensure the edit results in idiomatic, correct code
   - Do not leave the code in a broken state
   - Always use absolute file paths (starting with /)

CRITICAL REQUIREMENTS FOR USING THIS TOOL:

1. EXACT MATCHING: The \`old_str\` parameter must match EXACTLY one or more consecutive lines from the file, including all whitespace and indentation. The tool will fail if \`old_str\` matches multiple locations or doesn't match exactly with the file content.

2. UNIQUENESS: The \`old_str\` must uniquely identify a single instance in the file:
   - Include sufficient context before and after the change point (3-5 lines recommended)
   - If not unique, the replacement will not be performed

3. REPLACEMENT: The \`new_str\` parameter should contain the edited lines that replace the \`old_str\`. Both strings must be different.

Remember: when making multiple file edits in a row to the same file, you should prefer to send all edits in a single message with multiple calls to this tool, rather than multiple messages with a single call each.
`;

/** The file editor's description as OpenHands builds it for a conversation: it names the working directory. */
export function fileEditorDescription(workingDir?: string | null): string {
  if (!workingDir) return FILE_EDITOR_TOOL_DESCRIPTION;
  return (
    `${FILE_EDITOR_TOOL_DESCRIPTION}\n\nYour current working directory is: ${workingDir}\n` +
    'When exploring project structure, start with this directory instead of the root filesystem.'
  );
}

export const TASK_TRACKER_TOOL_DESCRIPTION = `This tool provides structured task management capabilities for development workflows.
It enables systematic tracking of work items, progress monitoring, and efficient
organization of complex development activities.

The tool maintains visibility into project status and helps communicate
progress effectively to users.

## Application Guidelines

Utilize this tool in the following situations:

1. Multi-phase development work - When projects involve multiple sequential or
   parallel activities
2. Complex implementation tasks - Work requiring systematic planning and
   coordination across multiple components
3. Explicit user request for task organization - When users specifically ask
   for structured task management
4. Multiple concurrent requirements - When users present several work items
   that need coordination
5. Project initiation - Capture and organize user requirements at project start
6. Work commencement - Update task status to in_progress before beginning
   implementation. Maintain focus by limiting active work to one task
7. Task completion - Update status to done and identify any additional work
   that emerged during implementation

## Situations Where Tool Usage Is Unnecessary

Avoid using this tool when:

1. Single atomic tasks that require no decomposition
2. Trivial operations where tracking adds no organizational value
3. Simple activities completable in minimal steps
4. Pure information exchange or discussion

Note: For single straightforward tasks, proceed with direct implementation
rather than creating tracking overhead.

## Status Management and Workflow

1. **Status Values**: Track work using these states:
   - todo: Not yet initiated
   - in_progress: Currently active (maintain single focus)
   - done: Successfully completed

2. **Workflow Practices**:
   - Update status dynamically as work progresses
   - Mark completion immediately upon task finish
   - Limit active work to ONE task at any given time
   - Complete current activities before initiating new ones
   - Remove obsolete tasks from tracking entirely

3. **Completion Criteria**:
   - Mark tasks as done only when fully achieved
   - Keep status as in_progress if errors, blocks, or partial completion exist
   - Create new tasks for discovered issues or dependencies
   - Never mark done when:
       - Test suites are failing
       - Implementation remains incomplete
       - Unresolved errors persist
       - Required resources are unavailable

4. **Task Organization**:
   - Write precise, actionable descriptions
   - Decompose complex work into manageable units
   - Use descriptive, clear naming conventions

When uncertain, favor using this tool. Proactive task management demonstrates
systematic approach and ensures comprehensive requirement fulfillment.`;

export const FINISH_TOOL_DESCRIPTION = `Signals the completion of the current task or conversation.

Use this tool when:
- You have successfully completed the user's requested task
- You cannot proceed further due to technical limitations or missing information

The message should include:
- A clear summary of actions taken and their results
- Any next steps for the user
- Explanation if you're unable to complete the task
- Any follow-up questions if more information is needed
`;

export const THINK_TOOL_DESCRIPTION = `Use the tool to think about something. It will not obtain new information or make any changes to the repository, but just log the thought. Use it when complex reasoning or brainstorming is needed.

Common use cases:
1. When exploring a repository and discovering the source of a bug, call this tool to brainstorm several unique ways of fixing the bug, and assess which change(s) are likely to be simplest and most effective.
2. After receiving test results, use this tool to brainstorm ways to fix failing tests.
3. When planning a complex refactoring, use this tool to outline different approaches and their tradeoffs.
4. When designing a new feature, use this tool to think through architecture decisions and implementation details.
5. When debugging a complex issue, use this tool to organize your thoughts and hypotheses.

The tool simply logs your thought process for better transparency and does not execute any code or make changes.`;

const SUMMARY_DESC =
  "A concise summary (approximately 10 words) describing what this specific action does. Focus on the key operation and target. Example: 'List all Python files in current directory'";
/** What the SDK's schema says of `security_risk`: pydantic puts the SecurityRisk enum's docstring there, not the field's description. */
const SECURITY_RISK_DESC =
  'Security risk levels for actions.\n\nBased on OpenHands security risk levels but adapted for agent-sdk.\nInteger values allow for easy comparison and ordering.';
export const SECURITY_RISKS = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH'] as const;
export type SecurityRisk = (typeof SECURITY_RISKS)[number];

const FILE_EDITOR_COMMAND_DESC = 'The commands to run. Allowed options are: `view`, `create`, `str_replace`, `insert`, `undo_edit`.';
const FILE_EDITOR_PATH_DESC = 'Absolute path to file or directory.';
const FILE_TEXT_DESC = 'Required parameter of `create` command, with the content of the file to be created.';
const OLD_STR_DESC = 'Required parameter of `str_replace` command containing the string in `path` to replace.';
const NEW_STR_DESC =
  'Optional parameter of `str_replace` command containing the new string (if not given, no string will be added). Required parameter of `insert` command containing the string to insert.';
const INSERT_LINE_DESC = 'Required parameter of `insert` command. The `new_str` will be inserted AFTER the line `insert_line` of `path`.';
const VIEW_RANGE_DESC =
  'Optional parameter of `view` command when `path` points to a file. If none is given, the full file is shown. If provided, the file will be shown in the indicated line number range, e.g. [11, 12] will show lines 11 and 12. Indexing at 1 to start. Setting `[start_line, -1]` shows all lines from `start_line` to the end of the file.';
const TASK_COMMAND_DESC =
  'The command to execute. `view` shows the current task list. `plan` creates or updates the task list based on provided requirements and progress. Always `view` the current list before making changes.';
const TASK_LIST_DESC = 'The full task list. Required parameter of `plan` command.';
const TASK_TITLE_DESC = 'A brief title for the task.';
const TASK_NOTES_DESC = 'Additional details or notes about the task.';
const TASK_STATUS_DESC = "The current status of the task. One of 'todo', 'in_progress', or 'done'.";

// ---------------------------------------------------------------------------------------------
// Action schemas (names as OpenHands' classes). Unknown keys are refused (pydantic extra="forbid").

export const TerminalActionSchema = z.strictObject({
  command: str(TERMINAL_COMMAND_DESC),
  is_input: bool(false, TERMINAL_IS_INPUT_DESC),
  timeout: z.preprocess(laxNumber, z.number().min(0).nullable()).default(null).describe(TERMINAL_TIMEOUT_DESC),
  reset: bool(false, TERMINAL_RESET_DESC),
});
export type TerminalAction = z.output<typeof TerminalActionSchema>;

export const FILE_EDITOR_COMMANDS = ['view', 'create', 'str_replace', 'insert', 'undo_edit'] as const;
export type FileEditorCommand = (typeof FILE_EDITOR_COMMANDS)[number];

export const FileEditorActionSchema = z.strictObject({
  command: z.enum(FILE_EDITOR_COMMANDS).describe(FILE_EDITOR_COMMAND_DESC),
  path: z.string().describe(FILE_EDITOR_PATH_DESC),
  file_text: optStr(FILE_TEXT_DESC),
  old_str: optStr(OLD_STR_DESC),
  new_str: optStr(NEW_STR_DESC),
  insert_line: z.preprocess(laxNumber, z.number().int().min(0).nullable()).default(null).describe(INSERT_LINE_DESC),
  view_range: z
    .preprocess(jsonArray, z.array(z.preprocess(laxNumber, z.number().int())).nullable())
    .default(null)
    .describe(VIEW_RANGE_DESC),
});
export type FileEditorAction = z.output<typeof FileEditorActionSchema>;

export const TASK_STATUSES = ['todo', 'in_progress', 'done'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** pydantic `BaseModel` default: unknown keys are ignored (dropped). */
export const TaskItemSchema = z.object({
  title: z.string().describe(TASK_TITLE_DESC),
  notes: z.string().default('').describe(TASK_NOTES_DESC),
  status: z.enum(TASK_STATUSES).default('todo').describe(TASK_STATUS_DESC),
});
export type TaskItem = z.output<typeof TaskItemSchema>;

export const TaskTrackerActionSchema = z.strictObject({
  command: z.enum(['view', 'plan']).default('view').describe(TASK_COMMAND_DESC),
  task_list: z.preprocess(jsonArray, z.array(TaskItemSchema)).default([]).describe(TASK_LIST_DESC),
});
export type TaskTrackerAction = z.output<typeof TaskTrackerActionSchema>;

export const FinishActionSchema = z.strictObject({ message: str('Final message to send to the user.') });
export type FinishAction = z.output<typeof FinishActionSchema>;

export const ThinkActionSchema = z.strictObject({ thought: str('The thought to log.') });
export type ThinkAction = z.output<typeof ThinkActionSchema>;

export interface ToolActions {
  terminal: TerminalAction;
  file_editor: FileEditorAction;
  task_tracker: TaskTrackerAction;
  finish: FinishAction;
  think: ThinkAction;
}

export const TOOL_ACTION_SCHEMAS = {
  terminal: TerminalActionSchema,
  file_editor: FileEditorActionSchema,
  task_tracker: TaskTrackerActionSchema,
  finish: FinishActionSchema,
  think: ThinkActionSchema,
} as const;

// ---------------------------------------------------------------------------------------------
// Kinds, annotations, definitions

export interface ToolAnnotations {
  title: string | null;
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/** JSON schema (the subset OpenHands sends: type, description, properties, required, items, enum). */
export interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: readonly string[];
}

export interface OpenAIToolDefinition {
  type: 'function';
  function: { name: string; description: string; parameters: JsonSchema };
}

/** A tool as `SystemPromptEvent.tools` lists it (the SDK's `ToolDefinition.model_dump()`). */
export interface ToolDefinitionJson {
  description: string;
  action_type: string;
  observation_type: string;
  annotations: ToolAnnotations;
  meta: Record<string, unknown> | null;
  title: string;
  kind: string;
}

export interface ToolSpec {
  name: ToolName;
  /** `kind` of the action in `ActionEvent.action` (TerminalAction, …). */
  actionKind: string;
  /** `kind` of the observation in `ObservationEvent.observation` (TerminalObservation, …). */
  observationKind: string;
  /** `kind` of the tool in `SystemPromptEvent.tools` (TerminalTool, …). */
  toolKind: string;
  annotations: ToolAnnotations;
  description: string;
  /** The tool's own parameters (without `summary` / `security_risk`). */
  parameters: JsonSchema;
  /** True for the tools the sandbox executor runs. */
  executor: boolean;
}

const s = (type: string, description: string, extra: Partial<JsonSchema> = {}): JsonSchema => ({ type, description, ...extra });

export const TOOL_SPECS: Record<ToolName, ToolSpec> = {
  terminal: {
    name: 'terminal',
    actionKind: 'TerminalAction',
    observationKind: 'TerminalObservation',
    toolKind: 'TerminalTool',
    annotations: { title: 'terminal', readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    description: TERMINAL_TOOL_DESCRIPTION,
    parameters: {
      type: 'object',
      properties: {
        command: s('string', TERMINAL_COMMAND_DESC),
        is_input: s('boolean', TERMINAL_IS_INPUT_DESC),
        timeout: s('number', TERMINAL_TIMEOUT_DESC),
        reset: s('boolean', TERMINAL_RESET_DESC),
      },
      required: ['command'],
    },
    executor: true,
  },
  file_editor: {
    name: 'file_editor',
    actionKind: 'FileEditorAction',
    observationKind: 'FileEditorObservation',
    toolKind: 'FileEditorTool',
    annotations: { title: 'file_editor', readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    description: FILE_EDITOR_TOOL_DESCRIPTION,
    parameters: {
      type: 'object',
      properties: {
        command: s('string', FILE_EDITOR_COMMAND_DESC, { enum: FILE_EDITOR_COMMANDS }),
        path: s('string', FILE_EDITOR_PATH_DESC),
        file_text: s('string', FILE_TEXT_DESC),
        old_str: s('string', OLD_STR_DESC),
        new_str: s('string', NEW_STR_DESC),
        insert_line: s('integer', INSERT_LINE_DESC),
        view_range: s('array', VIEW_RANGE_DESC, { items: { type: 'integer' } }),
      },
      required: ['command', 'path'],
    },
    executor: true,
  },
  task_tracker: {
    name: 'task_tracker',
    actionKind: 'TaskTrackerAction',
    observationKind: 'TaskTrackerObservation',
    toolKind: 'TaskTrackerTool',
    annotations: { title: null, readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    description: TASK_TRACKER_TOOL_DESCRIPTION,
    parameters: {
      type: 'object',
      properties: {
        command: s('string', TASK_COMMAND_DESC, { enum: ['view', 'plan'] }),
        task_list: s('array', TASK_LIST_DESC, {
          items: {
            type: 'object',
            properties: {
              title: s('string', TASK_TITLE_DESC),
              notes: s('string', TASK_NOTES_DESC),
              status: s('string', TASK_STATUS_DESC, { enum: TASK_STATUSES }),
            },
            required: ['title'],
          },
        }),
      },
    },
    executor: true,
  },
  finish: {
    name: 'finish',
    actionKind: 'FinishAction',
    observationKind: 'FinishObservation',
    toolKind: 'FinishTool',
    annotations: { title: 'finish', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    description: FINISH_TOOL_DESCRIPTION,
    parameters: { type: 'object', properties: { message: s('string', 'Final message to send to the user.') }, required: ['message'] },
    executor: false,
  },
  think: {
    name: 'think',
    actionKind: 'ThinkAction',
    observationKind: 'ThinkObservation',
    toolKind: 'ThinkTool',
    annotations: { title: null, readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    description: THINK_TOOL_DESCRIPTION,
    parameters: { type: 'object', properties: { thought: s('string', 'The thought to log.') }, required: ['thought'] },
    executor: false,
  },
};

export interface OpenAIToolOptions {
  /** Adds the `security_risk` enum parameter (the SDK's agent always asks for it), except on read-only tools. */
  securityRisk?: boolean;
  /** Names the working directory in the file editor's description, as OpenHands does. */
  workingDir?: string | null;
}

/** The OpenAI function-calling definition: the tool's parameters plus `summary` (and `security_risk`) first. */
export function openAITool(name: ToolName, options: OpenAIToolOptions = {}): OpenAIToolDefinition {
  const spec = TOOL_SPECS[name];
  const properties: Record<string, JsonSchema> = {};
  if (options.securityRisk && !spec.annotations.readOnlyHint) {
    properties.security_risk = s('string', SECURITY_RISK_DESC, { enum: SECURITY_RISKS });
  }
  properties.summary = s('string', SUMMARY_DESC);
  const params = structuredClone(spec.parameters);
  Object.assign(properties, params.properties ?? {});
  const parameters: JsonSchema = { type: 'object', properties };
  if (params.required) parameters.required = params.required;
  const description = name === 'file_editor' ? fileEditorDescription(options.workingDir) : spec.description;
  return { type: 'function', function: { name, description, parameters } };
}

/** The ToolDefinition JSON of `SystemPromptEvent.tools` (nulls kept; events drop them when stored). */
export function toolDefinitionJson(name: ToolName, options: { workingDir?: string | null } = {}): ToolDefinitionJson {
  const spec = TOOL_SPECS[name];
  return {
    description: name === 'file_editor' ? fileEditorDescription(options.workingDir) : spec.description,
    action_type: spec.actionKind,
    observation_type: spec.observationKind,
    annotations: { ...spec.annotations },
    meta: null,
    title: spec.annotations.title ?? name,
    kind: spec.toolKind,
  };
}

export interface ToolDefinitionEntry {
  name: ToolName;
  actionKind: string;
  observationKind: string;
  toolKind: string;
  openai: OpenAIToolDefinition;
  definition: ToolDefinitionJson;
}

/** Every tool: its OpenAI definition, kinds and SystemPromptEvent ToolDefinition (no working directory named). */
export const TOOL_DEFINITIONS: Record<ToolName, ToolDefinitionEntry> = Object.fromEntries(
  TOOL_NAMES.map((name) => [
    name,
    {
      name,
      actionKind: TOOL_SPECS[name].actionKind,
      observationKind: TOOL_SPECS[name].observationKind,
      toolKind: TOOL_SPECS[name].toolKind,
      openai: openAITool(name),
      definition: toolDefinitionJson(name),
    },
  ]),
) as Record<ToolName, ToolDefinitionEntry>;

// ---------------------------------------------------------------------------------------------
// Parsing the LLM's arguments

export type ParsedToolArguments<N extends ToolName = ToolName> =
  | { ok: true; tool: N; action: ToolActions[N]; summary: string | null; security_risk: SecurityRisk | null }
  | { ok: false; tool: N; error: string };

/** `path: message` for each zod issue, joined with "; ". */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      let msg = issue.message;
      if (issue.code === 'invalid_type' && /received undefined/.test(msg)) msg = 'Field required';
      if (issue.code === 'unrecognized_keys') msg = `Extra inputs are not permitted: ${issue.keys.join(', ')}`;
      return path ? `${path}: ${msg}` : msg;
    })
    .join('; ');
}

/**
 * Validates a tool call's arguments as the SDK does: `summary` and `security_risk` are taken out
 * (they describe the call, they are not the tool's), a `kind` naming the action is tolerated, and
 * the rest must match the action schema.
 */
export function parseToolArguments<N extends ToolName>(tool: N, args: unknown): ParsedToolArguments<N> {
  const spec = TOOL_SPECS[tool];
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    return { ok: false, tool, error: `Invalid arguments for tool '${tool}' (${spec.actionKind}): expected a JSON object` };
  }
  const rest: Record<string, unknown> = { ...(args as Record<string, unknown>) };
  const summary = typeof rest.summary === 'string' && rest.summary.trim() ? rest.summary : null;
  delete rest.summary;
  const risk = typeof rest.security_risk === 'string' ? rest.security_risk.toUpperCase() : null;
  delete rest.security_risk;
  if (rest.kind === spec.actionKind) delete rest.kind;
  const result = TOOL_ACTION_SCHEMAS[tool].safeParse(rest);
  if (!result.success) {
    return { ok: false, tool, error: `Invalid arguments for tool '${tool}' (${spec.actionKind}): ${formatZodIssues(result.error)}` };
  }
  const security_risk = risk && (SECURITY_RISKS as readonly string[]).includes(risk) ? (risk as SecurityRisk) : null;
  return { ok: true, tool, action: result.data as ToolActions[N], summary, security_risk };
}

/** `ActionEvent.action`: the validated action with its defaults and `kind` (the SDK's model_dump). */
export function actionJson<N extends ToolName>(tool: N, action: ToolActions[N]): Record<string, unknown> {
  return { ...(action as Record<string, unknown>), kind: TOOL_SPECS[tool].actionKind };
}

// ---------------------------------------------------------------------------------------------
// Executor request / observations

/** A name a shell can export (the SDK's ENV_VAR_NAME_RE); other secret names are never exported. */
export const ENV_VAR_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export const ExecuteToolRequestSchema = z.strictObject({
  conversation_id: z.string().refine((v) => parseUuid(v) !== null, { message: 'conversation_id must be a UUID' }),
  working_dir: z.string().min(1).refine((v) => v.startsWith('/'), { message: 'working_dir must be an absolute path' }),
  tool: z.string().min(1),
  action: z.record(z.string(), z.unknown()),
  env: z
    .record(z.string().regex(ENV_VAR_NAME_RE, 'env names must be shell variable names'), z.string().refine((v) => !v.includes('\0'), { message: 'env values cannot contain NUL' }))
    .optional(),
});
/** Body of the executor's `POST /api/tools/execute`. */
export interface ExecuteToolRequest {
  conversation_id: string;
  working_dir: string;
  tool: ExecutorToolName;
  /** The tool's arguments as the LLM sent them (`summary` / `security_risk` allowed). */
  action: Record<string, unknown>;
  /**
   * `terminal` only: variables set for this one command (the conversation's secrets it names),
   * gone from the shell once it ends; never echoed, never in the command line's argv.
   */
  env?: Record<string, string>;
}
export interface ExecuteToolResponse {
  observation: ToolObservation;
}

export interface CmdOutputMetadata {
  exit_code: number;
  pid: number;
  username: string | null;
  hostname: string | null;
  working_dir: string | null;
  py_interpreter_path: string | null;
  prefix: string;
  suffix: string;
}

export function cmdOutputMetadata(fields: Partial<CmdOutputMetadata> = {}): CmdOutputMetadata {
  return {
    exit_code: fields.exit_code ?? -1,
    pid: fields.pid ?? -1,
    username: fields.username ?? null,
    hostname: fields.hostname ?? null,
    working_dir: fields.working_dir ?? null,
    py_interpreter_path: fields.py_interpreter_path ?? null,
    prefix: fields.prefix ?? '',
    suffix: fields.suffix ?? '',
  };
}

export interface ObservationBase {
  content: (TextContent | ImageContent)[];
  is_error: boolean;
  kind: string;
}
export interface TerminalObservation extends ObservationBase {
  command: string | null;
  exit_code: number | null;
  timeout: boolean;
  metadata: CmdOutputMetadata;
  full_output_save_dir: string | null;
  kind: 'TerminalObservation';
}
export interface FileEditorObservation extends ObservationBase {
  command: FileEditorCommand;
  path: string | null;
  prev_exist: boolean;
  old_content: string | null;
  new_content: string | null;
  kind: 'FileEditorObservation';
}
export interface TaskTrackerObservation extends ObservationBase {
  command: 'view' | 'plan';
  task_list: TaskItem[];
  kind: 'TaskTrackerObservation';
}
export interface FinishObservation extends ObservationBase {
  kind: 'FinishObservation';
}
export interface ThinkObservation extends ObservationBase {
  kind: 'ThinkObservation';
}
export type ToolObservation = TerminalObservation | FileEditorObservation | TaskTrackerObservation | FinishObservation | ThinkObservation;

export function terminalObservation(
  text: string,
  fields: Partial<Omit<TerminalObservation, 'content' | 'kind'>> = {},
): TerminalObservation {
  return {
    content: [textContent(text)],
    is_error: fields.is_error ?? false,
    command: fields.command ?? null,
    exit_code: fields.exit_code ?? null,
    timeout: fields.timeout ?? false,
    metadata: fields.metadata ?? cmdOutputMetadata(),
    full_output_save_dir: fields.full_output_save_dir ?? null,
    kind: 'TerminalObservation',
  };
}

export function fileEditorObservation(
  content: string | (TextContent | ImageContent)[],
  fields: Partial<Omit<FileEditorObservation, 'content' | 'kind'>> & { command: FileEditorCommand },
): FileEditorObservation {
  return {
    content: typeof content === 'string' ? [textContent(content)] : content,
    is_error: fields.is_error ?? false,
    command: fields.command,
    path: fields.path ?? null,
    prev_exist: fields.prev_exist ?? true,
    old_content: fields.old_content ?? null,
    new_content: fields.new_content ?? null,
    kind: 'FileEditorObservation',
  };
}

export function taskTrackerObservation(
  text: string,
  fields: { command: 'view' | 'plan'; task_list?: TaskItem[]; is_error?: boolean },
): TaskTrackerObservation {
  return {
    content: [textContent(text)],
    is_error: fields.is_error ?? false,
    command: fields.command,
    task_list: (fields.task_list ?? []).map((t) => ({ title: t.title, notes: t.notes, status: t.status })),
    kind: 'TaskTrackerObservation',
  };
}

/** The observation of `finish`: the message itself (run by the worker). */
export function finishObservation(message: string): FinishObservation {
  return { content: [textContent(message)], is_error: false, kind: 'FinishObservation' };
}

/** The observation of `think` (run by the worker). */
export function thinkObservation(): ThinkObservation {
  return { content: [textContent('Your thought has been logged.')], is_error: false, kind: 'ThinkObservation' };
}

export const OBSERVATION_ERROR_HEADER = '[An error occurred during execution.]\n';

/**
 * What the LLM reads of an observation (the SDK's `to_llm_content`): the error header, then the
 * content; a terminal observation adds its prefix/suffix, working directory, Python interpreter and
 * exit code.
 */
export function observationToLlmContent(observation: ToolObservation): (TextContent | ImageContent)[] {
  const out: (TextContent | ImageContent)[] = [];
  if (observation.is_error) out.push(textContent(OBSERVATION_ERROR_HEADER));
  if (observation.kind !== 'TerminalObservation') {
    out.push(...observation.content);
    return out;
  }
  // An observation stored without metadata has the SDK's defaults (CmdOutputMetadata()), as pydantic reads it.
  const meta = observation.metadata ?? { prefix: '', suffix: '', exit_code: -1 };
  const text = observation.content.flatMap((c) => (c.type === 'text' ? [c.text] : [])).join('');
  let ret = `${meta.prefix ?? ''}${text}${meta.suffix ?? ''}`;
  if (meta.working_dir) ret += `\n[Current working directory: ${meta.working_dir}]`;
  if (meta.py_interpreter_path) ret += `\n[Python interpreter: ${meta.py_interpreter_path}]`;
  if (meta.exit_code !== undefined && meta.exit_code !== -1) ret += `\n[Command finished with exit code ${meta.exit_code}]`;
  out.push(textContent(ret));
  return out;
}
