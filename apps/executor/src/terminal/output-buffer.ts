import { closeSync, openSync, writeSync } from 'node:fs';

/** Output kept in memory before it goes to a file instead. */
const MEMORY_LIMIT_CHARS = 2_000_000;
/** Ends of a spilled output kept in memory (more than half of what the LLM may see). */
const END_KEEP_CHARS = 64_000;
/** A file of output stops growing here; the rest is counted, and its end kept. */
const FILE_LIMIT_CHARS = 256 * 1024 * 1024;

/** What a command printed since the last observation. */
export interface CapturedOutput {
  /** All of it, when it stayed in memory. */
  full: string | null;
  /** Its first and last characters (the whole text when `full` is set). */
  head: string;
  tail: string;
  length: number;
  /** The file already holding all of it (a spilled output). */
  file: string | null;
}

interface Spill {
  path: string;
  fd: number;
  head: string;
  tail: string;
  written: number;
  /** Characters that came after the file limit (only their last END_KEEP_CHARS are kept, in `tail`). */
  dropped: number;
}

/**
 * Accumulates a terminal's output between two observations without holding an unbounded amount in
 * memory: past MEMORY_LIMIT_CHARS it streams to a file (the one the observation will name) and keeps
 * only both ends.
 */
export class OutputBuffer {
  private parts: string[] = [];
  private size = 0;
  private spill: Spill | null = null;

  /** `spillFile` picks the file a large output goes to. */
  constructor(private readonly spillFile: () => string) {}

  get length(): number {
    return this.spill ? this.spill.written + this.spill.dropped : this.size;
  }

  append(text: string): void {
    if (!text) return;
    if (this.spill) return this.appendSpilled(text);
    this.parts.push(text);
    this.size += text.length;
    if (this.size > MEMORY_LIMIT_CHARS) this.startSpill();
  }

  /** Hands over what was gathered and starts afresh. */
  take(): CapturedOutput {
    const spill = this.spill;
    const parts = this.parts;
    this.parts = [];
    this.size = 0;
    this.spill = null;
    if (!spill) {
      const full = parts.join('');
      return { full, head: full, tail: full, length: full.length, file: null };
    }
    try {
      if (spill.dropped > 0) {
        const kept = spill.tail.slice(-Math.min(spill.dropped, spill.tail.length));
        const omitted = spill.dropped - kept.length;
        writeSync(spill.fd, omitted > 0 ? `\n[... ${omitted} characters of output were not saved ...]\n${kept}` : kept);
      }
    } finally {
      closeSync(spill.fd);
    }
    return { full: null, head: spill.head, tail: spill.tail, length: spill.written + spill.dropped, file: spill.path };
  }

  /** Drops everything (the session ended). */
  discard(): void {
    const spill = this.spill;
    this.parts = [];
    this.size = 0;
    this.spill = null;
    if (spill) closeSync(spill.fd);
  }

  private startSpill(): void {
    const all = this.parts.join('');
    this.parts = [];
    this.size = 0;
    let path: string;
    let fd: number;
    try {
      path = this.spillFile();
      fd = openSync(path, 'w', 0o600);
    } catch {
      // No file to spill to: keep the ends only.
      this.parts = [all.slice(0, END_KEEP_CHARS), `\n[... ${all.length - 2 * END_KEEP_CHARS} characters of output were dropped ...]\n`, all.slice(-END_KEEP_CHARS)];
      this.size = this.parts.reduce((n, p) => n + p.length, 0);
      return;
    }
    writeSync(fd, all);
    this.spill = { path, fd, head: all.slice(0, END_KEEP_CHARS), tail: all.slice(-END_KEEP_CHARS), written: all.length, dropped: 0 };
  }

  private appendSpilled(text: string): void {
    const spill = this.spill!;
    spill.tail = (spill.tail + text).slice(-END_KEEP_CHARS);
    if (spill.written < FILE_LIMIT_CHARS) {
      writeSync(spill.fd, text);
      spill.written += text.length;
    } else {
      spill.dropped += text.length;
    }
  }
}
