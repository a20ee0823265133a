/** Keys an agent may send to a running command with `is_input: true` (as the SDK's subprocess terminal maps them). */
const SPECIAL_KEYS: Record<string, string> = {
  ENTER: '\n',
  TAB: '\t',
  BS: '\x7f',
  ESC: '\x1b',
  UP: '\x1b[A',
  DOWN: '\x1b[B',
  RIGHT: '\x1b[C',
  LEFT: '\x1b[D',
  HOME: '\x1b[H',
  END: '\x1b[F',
  PGUP: '\x1b[5~',
  PGDN: '\x1b[6~',
};

/** `C-x`, `CTRL-x`, `CTRL+x` (any case) → `c-x`; anything else → null. */
export function parseCtrlKey(text: string): string | null {
  const upper = text.trim().toUpperCase();
  let key: string | null = null;
  if (upper.startsWith('C-')) key = upper.slice(2);
  else if (upper.startsWith('CTRL-') || upper.startsWith('CTRL+')) key = upper.slice(5);
  return key && key.length === 1 && key >= 'A' && key <= 'Z' ? `c-${key.toLowerCase()}` : null;
}

/** The SDK's `_is_special_key`: `C-<one char>`, which changes the completion message. */
export function isSpecialKey(command: string): boolean {
  const c = command.trim();
  return c.startsWith('C-') && c.length === 3;
}

export type KeyInput =
  /** SIGINT to the foreground command (there is no tty to turn ^C into a signal). */
  | { kind: 'interrupt' }
  /** Close the command's stdin (EOF). */
  | { kind: 'eof' }
  /** Bytes for the command's stdin. */
  | { kind: 'bytes'; data: string };

/** What sending `text` as input means. */
export function keyInput(text: string): KeyInput {
  const upper = text.trim().toUpperCase();
  if (SPECIAL_KEYS[upper] !== undefined) return { kind: 'bytes', data: SPECIAL_KEYS[upper] };
  const ctrl = parseCtrlKey(text);
  if (ctrl === 'c-c') return { kind: 'interrupt' };
  if (ctrl === 'c-d') return { kind: 'eof' };
  if (ctrl) return { kind: 'bytes', data: String.fromCharCode(ctrl.charCodeAt(2) - 96) };
  const normalized = text.replace(/\r\n?/g, '\n');
  return { kind: 'bytes', data: normalized.endsWith('\n') ? normalized : `${normalized}\n` };
}

/** The SDK refuses a "command" that is a Python/JSON literal (a malformed tool call), with a hint. */
export function pythonLiteralKind(command: string): string | null {
  const s = command.trimStart();
  if (s.length < 2) return null;
  const [a, b] = [s[0], s[1]];
  if (a === '[' && (b === '{' || b === '"' || b === "'")) return 'list literal';
  if (a === '[' && b === '[') return s.length >= 3 && s[2] !== ' ' && s[2] !== '\t' ? 'nested list literal' : null;
  if (a === '{' && (b === '"' || b === "'")) return 'dict literal';
  return null;
}

export function literalArgumentHint(kind: string, command: string): string {
  const head = command.trimStart().slice(0, 60);
  return (
    `[Tool-argument error] The \`command\` argument looks like a Python/JSON ${kind}, not a shell command. It starts with: ${pyRepr(head)}\n\n` +
    'The `terminal` tool runs exactly ONE shell command at a time. To pass structured data or multi-line code:\n' +
    '  - Write a script first with `file_editor` (command="create", path="/tmp/run.py", ...), then invoke it: `python /tmp/run.py`.\n' +
    '  - Or use a heredoc inline, e.g.:\n' +
    "        python - <<'EOF'\n" +
    "        DATABASES = {'default': {...}}\n" +
    '        # your code here\n' +
    '        EOF\n\n' +
    'Do not put a Python list/dict literal into the `command` field; the shell cannot interpret it.'
  );
}

/** Python's repr() of a str (close enough for a hint). */
function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\r/g, '\\r')
    .replace(new RegExp(quote, 'g'), `\\${quote}`);
  return `${quote}${body}${quote}`;
}
