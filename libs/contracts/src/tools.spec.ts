import {
  actionJson,
  cmdOutputMetadata,
  EXECUTOR_TOOL_NAMES,
  ExecuteToolRequestSchema,
  fileEditorDescription,
  fileEditorObservation,
  finishObservation,
  isExecutorToolName,
  isToolName,
  observationToLlmContent,
  openAITool,
  parseToolArguments,
  taskTrackerObservation,
  terminalObservation,
  textContent,
  thinkObservation,
  TOOL_DEFINITIONS,
  TOOL_NAMES,
  toolDefinitionJson,
} from './tools';

describe('tool contracts', () => {
  it('names the tools and their kinds as OpenHands does', () => {
    expect(TOOL_NAMES).toEqual(['terminal', 'file_editor', 'task_tracker', 'finish', 'think']);
    expect(EXECUTOR_TOOL_NAMES).toEqual(['terminal', 'file_editor', 'task_tracker']);
    const kinds = Object.fromEntries(TOOL_NAMES.map((n) => [n, [TOOL_DEFINITIONS[n].actionKind, TOOL_DEFINITIONS[n].observationKind, TOOL_DEFINITIONS[n].toolKind]]));
    expect(kinds).toEqual({
      terminal: ['TerminalAction', 'TerminalObservation', 'TerminalTool'],
      file_editor: ['FileEditorAction', 'FileEditorObservation', 'FileEditorTool'],
      task_tracker: ['TaskTrackerAction', 'TaskTrackerObservation', 'TaskTrackerTool'],
      finish: ['FinishAction', 'FinishObservation', 'FinishTool'],
      think: ['ThinkAction', 'ThinkObservation', 'ThinkTool'],
    });
    expect(isToolName('think')).toBe(true);
    expect(isToolName('browser')).toBe(false);
    expect(isExecutorToolName('finish')).toBe(false);
    expect(isExecutorToolName('file_editor')).toBe(true);
  });

  it('builds OpenAI function definitions with summary first, as the SDK does', () => {
    const terminal = TOOL_DEFINITIONS.terminal.openai;
    expect(terminal.type).toBe('function');
    expect(terminal.function.name).toBe('terminal');
    expect(terminal.function.description).toMatch(/^Execute a shell command in the terminal within a persistent shell session\./);
    expect(Object.keys(terminal.function.parameters.properties!)).toEqual(['summary', 'command', 'is_input', 'timeout', 'reset']);
    expect(terminal.function.parameters.required).toEqual(['command']);
    expect(terminal.function.parameters.properties!.timeout).toEqual({ type: 'number', description: expect.stringContaining('maximum time limit') });
    expect(terminal.function.parameters.properties!.summary.type).toBe('string');

    const editor = TOOL_DEFINITIONS.file_editor.openai.function.parameters;
    expect(Object.keys(editor.properties!)).toEqual(['summary', 'command', 'path', 'file_text', 'old_str', 'new_str', 'insert_line', 'view_range']);
    expect(editor.properties!.command.enum).toEqual(['view', 'create', 'str_replace', 'insert', 'undo_edit']);
    expect(editor.properties!.view_range).toMatchObject({ type: 'array', items: { type: 'integer' } });
    expect(editor.required).toEqual(['command', 'path']);

    const tasks = TOOL_DEFINITIONS.task_tracker.openai.function.parameters;
    expect(tasks.required).toBeUndefined();
    expect(tasks.properties!.task_list.items).toMatchObject({ type: 'object', required: ['title'], properties: { status: { enum: ['todo', 'in_progress', 'done'] } } });

    expect(TOOL_DEFINITIONS.finish.openai.function.parameters).toMatchObject({ required: ['message'], properties: { summary: {}, message: { type: 'string' } } });
    expect(TOOL_DEFINITIONS.think.openai.function.parameters).toMatchObject({ required: ['thought'] });

    // security_risk only when asked for, and never on read-only tools.
    expect(Object.keys(openAITool('terminal', { securityRisk: true }).function.parameters.properties!).slice(0, 2)).toEqual(['security_risk', 'summary']);
    expect(openAITool('think', { securityRisk: true }).function.parameters.properties!.security_risk).toBeUndefined();
    expect(openAITool('file_editor', { workingDir: '/w' }).function.description).toMatch(/Your current working directory is: \/w\nWhen exploring project structure/);
    expect(fileEditorDescription()).not.toMatch(/current working directory/);
    // The shared definitions are not altered by building others.
    expect(TOOL_DEFINITIONS.terminal.openai.function.parameters.properties!.security_risk).toBeUndefined();
  });

  it('describes each tool as SystemPromptEvent.tools lists it', () => {
    expect(toolDefinitionJson('terminal')).toEqual({
      description: TOOL_DEFINITIONS.terminal.openai.function.description,
      action_type: 'TerminalAction',
      observation_type: 'TerminalObservation',
      annotations: { title: 'terminal', readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
      meta: null,
      title: 'terminal',
      kind: 'TerminalTool',
    });
    expect(Object.keys(toolDefinitionJson('think'))).toEqual(['description', 'action_type', 'observation_type', 'annotations', 'meta', 'title', 'kind']);
    expect(toolDefinitionJson('task_tracker')).toMatchObject({ title: 'task_tracker', annotations: { title: null }, kind: 'TaskTrackerTool' });
    expect(TOOL_DEFINITIONS.finish.definition).toMatchObject({ action_type: 'FinishAction', observation_type: 'FinishObservation', kind: 'FinishTool', title: 'finish' });
  });

  it('parses arguments as the SDK does: summary and security_risk taken out, defaults filled in', () => {
    expect(parseToolArguments('terminal', { command: 'ls', summary: 'list files', security_risk: 'low' })).toEqual({
      ok: true,
      tool: 'terminal',
      action: { command: 'ls', is_input: false, timeout: null, reset: false },
      summary: 'list files',
      security_risk: 'LOW',
    });
    const parsed = parseToolArguments('file_editor', { command: 'view', path: '/a', kind: 'FileEditorAction' });
    expect(parsed).toMatchObject({ ok: true, summary: null, security_risk: null });
    if (!parsed.ok) throw new Error('expected ok');
    expect(actionJson('file_editor', parsed.action)).toEqual({
      command: 'view',
      path: '/a',
      file_text: null,
      old_str: null,
      new_str: null,
      insert_line: null,
      view_range: null,
      kind: 'FileEditorAction',
    });
    expect(parseToolArguments('task_tracker', {})).toMatchObject({ ok: true, action: { command: 'view', task_list: [] } });
    expect(parseToolArguments('finish', { message: 'done' })).toMatchObject({ ok: true, action: { message: 'done' } });
    expect(parseToolArguments('think', { thought: 'hmm' })).toMatchObject({ ok: true, action: { thought: 'hmm' } });
  });

  it('repairs what LLMs commonly get wrong: string booleans and numbers, JSON-encoded lists, chunked strings', () => {
    expect(parseToolArguments('terminal', { command: 'sleep 1', timeout: '5', is_input: 'false', reset: 'true' })).toMatchObject({
      ok: true,
      action: { timeout: 5, is_input: false, reset: true },
    });
    expect(parseToolArguments('file_editor', { command: 'view', path: '/a', view_range: '[1, 5]', insert_line: '3' })).toMatchObject({
      ok: true,
      action: { view_range: [1, 5], insert_line: 3 },
    });
    expect(parseToolArguments('file_editor', { command: 'str_replace', path: '/a', old_str: ['ab', 'cd'], new_str: 'x' })).toMatchObject({ ok: true, action: { old_str: 'abcd' } });
    expect(parseToolArguments('task_tracker', { command: 'plan', task_list: '[{"title": "t", "extra": 1}]' })).toMatchObject({
      ok: true,
      action: { task_list: [{ title: 't', notes: '', status: 'todo' }] },
    });
  });

  it('refuses invalid arguments with a message naming the tool and the fields', () => {
    const cases: [Parameters<typeof parseToolArguments>[0], unknown, RegExp][] = [
      ['terminal', {}, /^Invalid arguments for tool 'terminal' \(TerminalAction\): command: Field required$/],
      ['terminal', { command: 'ls', other: 1 }, /Extra inputs are not permitted: other/],
      ['terminal', { command: 'ls', timeout: -1 }, /timeout: /],
      ['terminal', 'ls', /expected a JSON object/],
      ['file_editor', { command: 'remove', path: '/a' }, /command: /],
      ['file_editor', { command: 'insert', path: '/a', insert_line: -1 }, /insert_line: /],
      ['task_tracker', { command: 'plan', task_list: [{ notes: 'x' }] }, /task_list\.0\.title: Field required/],
      ['finish', {}, /message: Field required/],
      ['file_editor', { command: 'view', path: '/a', kind: 'TerminalAction' }, /Extra inputs are not permitted: kind/],
    ];
    for (const [tool, args, message] of cases) {
      const result = parseToolArguments(tool, args);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toMatch(message);
    }
  });

  it('validates the executor request', () => {
    const ok = { conversation_id: '3f2b8c4e1a2b4c3d8e9f0a1b2c3d4e5f', working_dir: '/w', tool: 'terminal', action: { command: 'ls' } };
    expect(ExecuteToolRequestSchema.safeParse(ok).success).toBe(true);
    expect(ExecuteToolRequestSchema.safeParse({ ...ok, conversation_id: 'x' }).success).toBe(false);
    expect(ExecuteToolRequestSchema.safeParse({ ...ok, working_dir: 'w' }).success).toBe(false);
    expect(ExecuteToolRequestSchema.safeParse({ ...ok, action: 'ls' }).success).toBe(false);
    expect(ExecuteToolRequestSchema.safeParse({ ...ok, extra: 1 }).success).toBe(false);
  });

  it('builds observations with OpenHands field order and defaults', () => {
    expect(textContent('hi')).toEqual({ cache_prompt: false, type: 'text', text: 'hi' });
    const terminal = terminalObservation('out', { command: 'ls', exit_code: 0, metadata: cmdOutputMetadata({ exit_code: 0, working_dir: '/w' }) });
    expect(Object.keys(terminal)).toEqual(['content', 'is_error', 'command', 'exit_code', 'timeout', 'metadata', 'full_output_save_dir', 'kind']);
    expect(Object.keys(terminal.metadata)).toEqual(['exit_code', 'pid', 'username', 'hostname', 'working_dir', 'py_interpreter_path', 'prefix', 'suffix']);
    expect(terminalObservation('x')).toMatchObject({ command: null, exit_code: null, timeout: false, is_error: false, metadata: { exit_code: -1, pid: -1 } });
    const editor = fileEditorObservation('done', { command: 'create', path: '/a', prev_exist: false, new_content: 'x' });
    expect(Object.keys(editor)).toEqual(['content', 'is_error', 'command', 'path', 'prev_exist', 'old_content', 'new_content', 'kind']);
    expect(editor).toMatchObject({ prev_exist: false, old_content: null, kind: 'FileEditorObservation' });
    expect(fileEditorObservation('e', { command: 'view', is_error: true })).toMatchObject({ path: null, prev_exist: true });
    const tasks = taskTrackerObservation('t', { command: 'plan', task_list: [{ title: 'a', notes: '', status: 'todo' }] });
    expect(Object.keys(tasks)).toEqual(['content', 'is_error', 'command', 'task_list', 'kind']);
    expect(finishObservation('bye')).toEqual({ content: [textContent('bye')], is_error: false, kind: 'FinishObservation' });
    expect(thinkObservation()).toEqual({ content: [textContent('Your thought has been logged.')], is_error: false, kind: 'ThinkObservation' });
  });

  it('renders observations for the LLM as the SDK does', () => {
    const done = terminalObservation('hello', {
      command: 'echo hello',
      exit_code: 0,
      metadata: cmdOutputMetadata({ exit_code: 0, working_dir: '/w', py_interpreter_path: '/usr/bin/python', suffix: '\n[The command completed with exit code 0.]' }),
    });
    expect(observationToLlmContent(done)).toEqual([
      textContent('hello\n[The command completed with exit code 0.]\n[Current working directory: /w]\n[Python interpreter: /usr/bin/python]\n[Command finished with exit code 0]'),
    ]);
    const running = terminalObservation('partial', {
      exit_code: -1,
      metadata: cmdOutputMetadata({ prefix: '[Below is the output of the previous command.]\n', suffix: '\n[still running]' }),
    });
    expect(observationToLlmContent(running)).toEqual([textContent('[Below is the output of the previous command.]\npartial\n[still running]')]);
    const failed = fileEditorObservation('No such file', { command: 'view', is_error: true });
    expect(observationToLlmContent(failed)).toEqual([textContent('[An error occurred during execution.]\n'), textContent('No such file')]);
  });
});
