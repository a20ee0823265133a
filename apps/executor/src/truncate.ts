/** Port of the SDK's `maybe_truncate` (openhands/sdk/utils/truncate.py): keep head and tail, note in the middle. */

export const DEFAULT_TRUNCATE_NOTICE =
  '<response clipped><NOTE>Due to the max output limit, only part of the full response has been shown to you.</NOTE>';

export function truncateNoticeWithFile(filePath: string, lineNum: number): string {
  return (
    '<response clipped><NOTE>Due to the max output limit, only part of the full response has been shown to you. ' +
    `The complete output has been saved to ${filePath} - you can use other tools to view the full content ` +
    `(truncated part starts around line ${lineNum}).</NOTE>`
  );
}

/** Python's `len(text.splitlines())` for text made of `\n`-separated lines. */
export function countLines(text: string): number {
  if (!text) return 0;
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return text.endsWith('\n') ? n : n + 1;
}

/**
 * Text too long for `limit`, given by its head and tail (the same string when it is all in memory):
 * head + notice + tail, `limit` characters at most. `savedTo` names the file holding all of it.
 */
export function truncateMiddle(parts: { head: string; tail: string }, limit: number, notice = DEFAULT_TRUNCATE_NOTICE, savedTo?: string): string {
  if (notice.length >= limit) return notice.slice(0, limit);
  const available = limit - notice.length;
  const proposedHead = Math.ceil(available / 2);
  let finalNotice = notice;
  if (savedTo) finalNotice = truncateNoticeWithFile(savedTo, countLines(parts.head.slice(0, proposedHead)) + 1);
  if (finalNotice.length >= limit) return finalNotice.slice(0, limit);
  const remaining = limit - finalNotice.length;
  const headChars = Math.min(proposedHead, remaining);
  const tailChars = remaining - headChars;
  return parts.head.slice(0, headChars) + finalNotice + (tailChars > 0 ? parts.tail.slice(-tailChars) : '');
}

/** `maybe_truncate` without a save directory. */
export function maybeTruncate(text: string, limit: number, notice = DEFAULT_TRUNCATE_NOTICE): string {
  return text.length <= limit ? text : truncateMiddle({ head: text, tail: text }, limit, notice);
}
