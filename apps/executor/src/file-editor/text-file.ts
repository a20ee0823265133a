import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { ToolError } from '../errors';
import { OpenFolder } from '../sandbox-paths';

/** The SDK's FileEditor.MAX_FILE_SIZE_MB. */
export const MAX_FILE_SIZE_BYTES = 10 * 1024 * 1024;

export const IMAGE_MIME_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
};

/** How a text file is stored, so that an edit writes it back the same way. */
export interface TextFormat {
  encoding: 'utf8' | 'latin1';
  /** `\r\n` when every line break of the file is one (the text is handled with `\n`). */
  eol: '\n' | '\r\n';
  bom: boolean;
}

export interface TextFile {
  text: string;
  format: TextFormat;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** binaryornot's idea, simply: NUL bytes, or mostly control characters, in the first 8 KiB. */
export function looksBinary(bytes: Uint8Array): boolean {
  const sample = bytes.subarray(0, 8192);
  if (sample.length === 0) return false;
  let control = 0;
  for (const b of sample) {
    if (b === 0) return true;
    if (b < 8 || (b > 13 && b < 32 && b !== 27) || b === 127) control++;
  }
  return control / sample.length > 0.3;
}

/** Checks size and type of an open file as the SDK's `validate_file` does. */
export async function validateFile(handle: FileHandle, displayPath: string, options: { allowImages?: boolean } = {}): Promise<void> {
  const info = await handle.stat();
  if (!info.isFile()) return;
  if (info.size > MAX_FILE_SIZE_BYTES) {
    throw new ToolError(
      `File validation failed for ${displayPath}: File is too large (${(info.size / 1024 / 1024).toFixed(1)}MB). Maximum allowed size is ${MAX_FILE_SIZE_BYTES / 1024 / 1024}MB.`,
    );
  }
  const ext = extname(displayPath);
  if (options.allowImages && IMAGE_MIME_TYPES[ext]) return;
  const buf = Buffer.alloc(8192);
  const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
  if (looksBinary(buf.subarray(0, bytesRead))) {
    throw new ToolError(`File validation failed for ${displayPath}: File appears to be binary and this file type cannot be read or edited by this tool.`);
  }
}

export function extname(path: string): string {
  const name = basename(path);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot).toLowerCase() : '';
}

/** Reads a text file (UTF-8, else Latin-1), with `\r\n` line breaks turned into `\n` when the file uses them throughout. */
export async function readTextFile(handle: FileHandle, displayPath: string): Promise<TextFile> {
  await validateFile(handle, displayPath);
  let bytes: Buffer;
  try {
    bytes = await handle.readFile();
  } catch (err) {
    throw new ToolError(`Ran into ${(err as Error).message} while trying to read ${displayPath}`);
  }
  let text: string;
  let encoding: TextFormat['encoding'] = 'utf8';
  let bom = false;
  try {
    text = utf8.decode(bytes);
    if (text.charCodeAt(0) === 0xfeff) {
      bom = true;
      text = text.slice(1);
    }
  } catch {
    text = bytes.toString('latin1');
    encoding = 'latin1';
  }
  const lf = countOf(text, '\n');
  const crlf = countOf(text, '\r\n');
  const eol = lf > 0 && lf === crlf ? '\r\n' : '\n';
  if (eol === '\r\n') text = text.replace(/\r\n/g, '\n');
  return { text, format: { encoding, eol, bom } };
}

function countOf(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

export const NEW_FILE_FORMAT: TextFormat = { encoding: 'utf8', eol: '\n', bom: false };

function encode(text: string, format: TextFormat): Buffer {
  let out = format.eol === '\r\n' ? text.replace(/\r?\n/g, '\r\n') : text;
  // A Latin-1 file that gains characters Latin-1 lacks becomes UTF-8, as the SDK does.
  if (format.encoding === 'latin1' && !/[^\u0000-\u00ff]/.test(out)) return Buffer.from(out, 'latin1');
  if (format.bom) out = `\ufeff${out}`;
  return Buffer.from(out, 'utf8');
}

/**
 * Writes `name` of `folder` atomically (a temporary file beside it, renamed over it), keeping the
 * permission bits of the file it replaces. Renaming replaces a symlink rather than writing through it.
 */
export async function writeTextFile(folder: OpenFolder, name: string, displayPath: string, text: string, format: TextFormat): Promise<void> {
  const tmp = folder.at(`.${name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const previous = await folder.lstat(name);
    const mode = previous?.isFile() ? previous.mode & 0o7777 : 0o644;
    const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      await handle.writeFile(encode(text, format));
      if (previous?.isFile()) await handle.chmod(mode);
    } finally {
      await handle.close();
    }
    await rename(tmp, folder.at(name));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new ToolError(`Ran into ${(err as Error).message} while trying to write to ${displayPath}`);
  }
}

/** Python's iteration over a text file: lines with their `\n`. */
export function splitLinesKeepEnds(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}
