import { FileEditorAction, fileEditorObservation, FileEditorObservation, imageContent, textContent } from '@berth/contracts/executor';
import { constants, Stats } from 'node:fs';
import { FileHandle, open, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { SerialQueue, ToolError } from '../errors';
import { OpenFolder, SandboxPaths } from '../sandbox-paths';
import { maybeTruncate } from '../truncate';
import { extname, IMAGE_MIME_TYPES, NEW_FILE_FORMAT, readTextFile, splitLinesKeepEnds, TextFile, TextFormat, validateFile, writeTextFile } from './text-file';

/** The SDK's file editor limits and notices (openhands/tools/file_editor/utils). */
const MAX_RESPONSE_LEN_CHAR = 16_000;
const SNIPPET_CONTEXT_WINDOW = 4;
const TEXT_FILE_CONTENT_TRUNCATED_NOTICE =
  '<response clipped><NOTE>Due to the max output limit, only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>';
const DIRECTORY_CONTENT_TRUNCATED_NOTICE =
  '<response clipped><NOTE>Due to the max output limit, only part of this directory has been shown to you. You should use `ls -la` instead to view large directories incrementally.</NOTE>';

/** Undo entries kept per file, and in all for a conversation (characters). */
const MAX_HISTORY_PER_FILE = 10;
const MAX_HISTORY_CHARS = 64 * 1024 * 1024;

function invalidParameter(parameter: string, value: string, hint?: string): ToolError {
  return new ToolError(hint ? `Invalid \`${parameter}\` parameter: ${value}. ${hint}` : `Invalid \`${parameter}\` parameter: ${value}.`);
}
function missingParameter(command: string, parameter: string): ToolError {
  return new ToolError(`Parameter \`${parameter}\` is required for command: ${command}.`);
}
/** Python's str() of a list of ints. */
function pyList(values: readonly number[]): string {
  return `[${values.join(', ')}]`;
}

/** `str(Path(p))`: no repeated or trailing slashes, no `.` segments. */
function displayPath(path: string): string {
  const parts = path.split('/').filter((p, i) => p !== '.' && (p !== '' || i === 0));
  const joined = parts.join('/');
  return joined === '' ? '/' : joined;
}

/** `cat -n` as the SDK's `_make_output` prints it. */
function makeOutput(snippet: string, description: string, startLine = 1): string {
  const truncated = maybeTruncate(snippet, MAX_RESPONSE_LEN_CHAR, TEXT_FILE_CONTENT_TRUNCATED_NOTICE);
  const numbered = truncated
    .split('\n')
    .map((line, i) => `${String(i + startLine).padStart(6)}\t${line}`)
    .join('\n');
  return `Here's the result of running \`cat -n\` on ${description}:\n${numbered}\n`;
}

/** Per-file undo history, bounded per file and in total. */
class EditHistory {
  private readonly entries = new Map<string, { text: string; format: TextFormat }[]>();
  private size = 0;

  add(key: string, text: string, format: TextFormat): void {
    const list = this.entries.get(key) ?? [];
    list.push({ text, format });
    this.size += text.length;
    while (list.length > MAX_HISTORY_PER_FILE) this.size -= list.shift()!.text.length;
    this.entries.delete(key);
    this.entries.set(key, list);
    // Over budget: forget the oldest entries of the least recently edited files.
    for (const [k, l] of this.entries) {
      if (this.size <= MAX_HISTORY_CHARS || k === key) break;
      while (l.length > 0 && this.size > MAX_HISTORY_CHARS) this.size -= l.shift()!.text.length;
      if (l.length === 0) this.entries.delete(k);
    }
  }

  pop(key: string): { text: string; format: TextFormat } | null {
    const list = this.entries.get(key);
    const last = list?.pop();
    if (!last) return null;
    this.size -= last.text.length;
    if (list!.length === 0) this.entries.delete(key);
    return last;
  }
}

/**
 * A conversation's `file_editor` tool, after the SDK's FileEditor (Anthropic's str_replace editor):
 * view, create, str_replace, insert, undo_edit — confined to the sandbox root (symlinks followed).
 * Calls are served one at a time.
 */
export class FileEditor {
  private readonly history = new EditHistory();
  private readonly queue = new SerialQueue();

  constructor(private readonly paths: SandboxPaths) {}

  execute(action: FileEditorAction, workingDir: string): Promise<FileEditorObservation> {
    return this.queue.run(async () => {
      try {
        return await this.dispatch(action, workingDir);
      } catch (err) {
        if (err instanceof ToolError) return fileEditorObservation(err.message, { command: action.command, is_error: true });
        const e = err as NodeJS.ErrnoException;
        return fileEditorObservation(`Ran into ${e.message} while trying to ${action.command} ${action.path}`, { command: action.command, is_error: true });
      }
    });
  }

  private async dispatch(action: FileEditorAction, workingDir: string): Promise<FileEditorObservation> {
    const { command } = action;
    const path = displayPath(action.path);
    const real = await this.validatePath(command, action.path, path, workingDir);
    switch (command) {
      case 'view':
        return this.view(real, path, action.view_range);
      case 'create': {
        if (action.file_text === null) throw missingParameter(command, 'file_text');
        await this.write(real, path, action.file_text, NEW_FILE_FORMAT, true);
        this.history.add(real, action.file_text, NEW_FILE_FORMAT);
        return fileEditorObservation(`File created successfully at: ${path}`, { command, path, new_content: action.file_text, prev_exist: false });
      }
      case 'str_replace': {
        if (action.old_str === null) throw missingParameter(command, 'old_str');
        const newStr = action.new_str ?? '';
        if (newStr === action.old_str) {
          throw invalidParameter('new_str', newStr, 'No replacement was performed. `new_str` and `old_str` must be different.');
        }
        return this.strReplace(real, path, action.old_str, newStr);
      }
      case 'insert':
        if (action.insert_line === null) throw missingParameter(command, 'insert_line');
        if (action.new_str === null) throw missingParameter(command, 'new_str');
        return this.insert(real, path, action.insert_line, action.new_str);
      case 'undo_edit':
        return this.undo(real, path);
    }
  }

  /** The real path to work on, after the SDK's checks and the sandbox confinement. */
  private async validatePath(command: FileEditorAction['command'], given: string, path: string, workingDir: string): Promise<string> {
    if (!isAbsolute(given)) {
      let hint = 'The path should be an absolute path.';
      const suggested = join(workingDir, given);
      const located = await this.paths.locate(suggested).catch(() => null);
      if (located?.inside && (await this.statOf(located.real, suggested))) hint += ` Maybe you meant ${suggested}?`;
      throw invalidParameter('path', given, hint);
    }
    const { real, inside } = await this.paths.locate(given);
    if (!inside) {
      const via = real !== given && real !== path ? ` (it resolves to ${real})` : '';
      throw invalidParameter(
        'path',
        path,
        `The path ${path} is outside the sandbox${via}: only files under ${this.paths.root} can be viewed or edited.`,
      );
    }
    const info = await this.statOf(real, path);
    if (command === 'create' && info) {
      throw invalidParameter('path', path, `File already exists at: ${path}. Cannot overwrite files using command \`create\`.`);
    }
    if (command !== 'create' && !info) throw invalidParameter('path', path, `The path ${path} does not exist. Please provide a valid path.`);
    if (command !== 'view' && info?.isDirectory()) {
      throw invalidParameter('path', path, `The path ${path} is a directory and only the \`view\` command can be used on directories.`);
    }
    return real;
  }

  /**
   * What `real` is, looked up through its opened folder (see SandboxPaths.openFolder): every
   * read and write of the editor goes the same way, so a folder swapped for a symlink after the
   * check leads nowhere outside.
   */
  private async statOf(real: string, path: string): Promise<Stats | null> {
    if (real === this.paths.root) return stat(real);
    const parent = await this.paths.openParent(real, path).catch(() => null);
    if (!parent) return null;
    try {
      return await parent.folder.lstat(parent.name);
    } finally {
      await parent.folder.close();
    }
  }

  private async read<T>(real: string, path: string, work: (handle: FileHandle) => Promise<T>): Promise<T> {
    const handle = await this.paths.openFile(real, path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      return await work(handle);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  private readText(real: string, path: string): Promise<TextFile> {
    return this.read(real, path, (handle) => readTextFile(handle, path));
  }

  private async write(real: string, path: string, text: string, format: TextFormat, create = false): Promise<void> {
    const { folder, name } = await this.paths.openParent(real, path, create);
    try {
      await writeTextFile(folder, name, path, text, format);
    } finally {
      await folder.close();
    }
  }

  private async view(real: string, path: string, viewRange: number[] | null): Promise<FileEditorObservation> {
    const info = await this.statOf(real, path);
    if (info?.isDirectory()) {
      if (viewRange && viewRange.length > 0) {
        throw invalidParameter('view_range', pyList(viewRange), 'The `view_range` parameter is not allowed when `path` points to a directory.');
      }
      let listing: string[];
      let hidden: number;
      try {
        ({ listing, hidden } = await this.listDirectory(real, path));
      } catch (err) {
        return fileEditorObservation((err as Error).message, { command: 'view', is_error: true, path });
      }
      const msg = [`Here's the files and directories up to 2 levels deep in ${path}, excluding hidden items:\n${listing.join('\n')}`];
      if (hidden > 0) msg.push(`\n${hidden} hidden files/directories in this directory are excluded. You can use 'ls -la ${path}' to see them.`);
      return fileEditorObservation(maybeTruncate(msg.join('\n'), MAX_RESPONSE_LEN_CHAR, DIRECTORY_CONTENT_TRUNCATED_NOTICE), { command: 'view', path });
    }

    const mime = IMAGE_MIME_TYPES[extname(path)];
    if (mime) {
      const bytes = await this.read(real, path, async (handle) => {
        await validateFile(handle, path, { allowImages: true });
        try {
          return await handle.readFile();
        } catch (err) {
          throw new ToolError(`Failed to read image file ${path}: ${(err as Error).message}`);
        }
      });
      return fileEditorObservation(
        [textContent(`Image file ${path} read successfully. Displaying image content.`), imageContent([`data:${mime};base64,${bytes.toString('base64')}`])],
        { command: 'view', path },
      );
    }

    const { text } = await this.readText(real, path);
    if (!viewRange || viewRange.length === 0) return fileEditorObservation(makeOutput(text, path, 1), { command: 'view', path });

    const lines = splitLinesKeepEnds(text);
    const numLines = lines.length;
    if (viewRange.length !== 2) throw invalidParameter('view_range', pyList(viewRange), 'It should be a list of two integers.');
    const [startLine] = viewRange;
    let endLine = viewRange[1];
    if (startLine < 1 || startLine > numLines) {
      throw invalidParameter('view_range', pyList(viewRange), `Its first element \`${startLine}\` should be within the range of lines of the file: ${pyList([1, numLines])}.`);
    }
    let warning: string | null = null;
    if (endLine === -1) endLine = numLines;
    else if (endLine > numLines) {
      warning = `We only show up to ${numLines} since there're only ${numLines} lines in this file.`;
      endLine = numLines;
    }
    if (endLine < startLine) {
      throw invalidParameter('view_range', pyList(viewRange), `Its second element \`${endLine}\` should be greater than or equal to the first element \`${startLine}\`.`);
    }
    const slice = lines
      .slice(startLine - 1, endLine)
      .map((l) => l.replace(/\n$/, ''))
      .join('\n');
    let output = makeOutput(slice, path, startLine);
    if (warning) output = `NOTE: ${warning}\n${output}`;
    return fileEditorObservation(output, { command: 'view', path });
  }

  /** Non-hidden entries up to 2 levels deep, directories with a trailing `/`, sorted as the SDK sorts them. */
  private async listDirectory(real: string, path: string): Promise<{ listing: string[]; hidden: number }> {
    const base = path === '/' ? '' : path;
    const folder = new OpenFolder(await this.paths.openFile(real, path, constants.O_RDONLY | constants.O_DIRECTORY));
    try {
      const names = (await readdir(folder.at())).sort();
      const hidden = names.filter((n) => n.startsWith('.')).length;
      const listing = [`${base}/`];
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const isDir = (await stat(folder.at(name)).catch(() => null))?.isDirectory() ?? false;
        listing.push(`${base}/${name}${isDir ? '/' : ''}`);
        if (!isDir) continue;
        // A linked folder is listed, but not looked into when it leads out of the sandbox.
        const child = await open(folder.at(name), constants.O_RDONLY | constants.O_DIRECTORY).catch(() => null);
        if (!child) continue;
        const sub = new OpenFolder(child);
        try {
          if (!(await this.paths.holds(child))) continue;
          for (const entry of (await readdir(sub.at()).catch(() => [])).sort()) {
            if (entry.startsWith('.')) continue;
            const subIsDir = (await stat(sub.at(entry)).catch(() => null))?.isDirectory() ?? false;
            listing.push(`${base}/${name}/${entry}${subIsDir ? '/' : ''}`);
          }
        } finally {
          await sub.close();
        }
      }
      return { listing, hidden };
    } finally {
      await folder.close();
    }
  }

  private async strReplace(real: string, path: string, oldStr: string, newStr: string): Promise<FileEditorObservation> {
    const { text, format } = await this.readText(real, path);
    let needle = oldStr;
    let occurrences = needle === '' ? [] : findAll(text, needle);
    if (occurrences.length === 0) {
      // Perhaps only surrounding whitespace differs: retry the match (never new_str) stripped.
      needle = oldStr.trim();
      if (needle === '') {
        // Python finds an empty string everywhere: unique only in an empty file.
        if (text !== '') {
          const all = splitLinesKeepEnds(text).map((_, i) => i + 1);
          throw new ToolError(`No replacement was performed. Multiple occurrences of old_str \`\` in lines ${pyList(all.slice(0, 100))}. Please ensure it is unique.`);
        }
        occurrences = [0];
      } else {
        occurrences = findAll(text, needle);
      }
      if (occurrences.length === 0) throw new ToolError(`No replacement was performed, old_str \`${needle}\` did not appear verbatim in ${path}.`);
    }
    if (occurrences.length > 1) {
      const lines = [...new Set(linesAt(text, occurrences))];
      throw new ToolError(`No replacement was performed. Multiple occurrences of old_str \`${needle}\` in lines ${pyList(lines)}. Please ensure it is unique.`);
    }
    const at = occurrences[0];
    const newText = text.slice(0, at) + newStr + text.slice(at + needle.length);
    await this.write(real, path, newText, format);
    this.history.add(real, text, format);

    const [replacementLine] = linesAt(text, [at]);
    const startLine = Math.max(0, replacementLine - SNIPPET_CONTEXT_WINDOW);
    const endLine = replacementLine + SNIPPET_CONTEXT_WINDOW + countNewlines(newStr);
    const snippet = splitLinesKeepEnds(newText).slice(startLine, endLine).join('');
    const message =
      `The file ${path} has been edited. ` +
      makeOutput(snippet, `a snippet of ${path}`, startLine + 1) +
      'Review the changes and make sure they are as expected. Edit the file again if necessary.';
    return fileEditorObservation(message, { command: 'str_replace', path, prev_exist: true, old_content: text, new_content: newText });
  }

  private async insert(real: string, path: string, insertLine: number, newStr: string): Promise<FileEditorObservation> {
    const { text, format } = await this.readText(real, path);
    const lines = splitLinesKeepEnds(text);
    const numLines = lines.length;
    if (insertLine < 0 || insertLine > numLines) {
      throw invalidParameter('insert_line', String(insertLine), `It should be within the range of allowed values: ${pyList([0, numLines])}`);
    }
    const newStrLines = newStr.split('\n');
    const before = lines.slice(0, insertLine);
    // A last line without its newline gets one, so the inserted text starts on a line of its own.
    if (before.length > 0 && !before[before.length - 1].endsWith('\n')) before[before.length - 1] += '\n';
    const newText = [...before, ...newStrLines.map((l) => `${l}\n`), ...lines.slice(insertLine)].join('');
    await this.write(real, path, newText, format);
    this.history.add(real, text, format);

    const startLine = Math.max(0, insertLine - SNIPPET_CONTEXT_WINDOW);
    const endLine = Math.min(numLines + newStrLines.length, insertLine + SNIPPET_CONTEXT_WINDOW + newStrLines.length);
    const snippet = splitLinesKeepEnds(newText).slice(startLine, endLine).join('');
    const message =
      `The file ${path} has been edited. ` +
      makeOutput(snippet, 'a snippet of the edited file', Math.max(1, insertLine - SNIPPET_CONTEXT_WINDOW + 1)) +
      'Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.';
    return fileEditorObservation(message, { command: 'insert', path, prev_exist: true, old_content: text, new_content: newText });
  }

  private async undo(real: string, path: string): Promise<FileEditorObservation> {
    const { text: current } = await this.readText(real, path);
    const previous = this.history.pop(real);
    if (!previous) throw new ToolError(`No edit history found for ${path}.`);
    await this.write(real, path, previous.text, previous.format);
    return fileEditorObservation(`Last edit to ${path} undone successfully. ${makeOutput(previous.text, path)}`, {
      command: 'undo_edit',
      path,
      prev_exist: true,
      old_content: current,
      new_content: previous.text,
    });
  }
}

/** Start offsets of the non-overlapping occurrences of `needle` (at most `limit`). */
function findAll(text: string, needle: string, limit = 10_000): number[] {
  const out: number[] = [];
  for (let i = text.indexOf(needle); i !== -1 && out.length < limit; i = text.indexOf(needle, i + needle.length)) out.push(i);
  return out;
}

/** 1-based line numbers of ascending offsets, in one pass. */
function linesAt(text: string, offsets: number[]): number[] {
  const lines: number[] = [];
  let line = 1;
  let pos = 0;
  for (const offset of offsets) {
    for (let i = text.indexOf('\n', pos); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
      line++;
      pos = i + 1;
    }
    lines.push(line);
  }
  return lines;
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

