import { BashError, BashEvent, ExecuteBashRequestSchema, formatZodIssues } from '@berth/contracts/executor';
import { WebSocket } from 'ws';
import { Activity } from '../activity';
import { BashEventStore, bashEventId, bashTimestamp } from './bash-event-store';
import { BashService } from './bash-service';
import { logLine } from '../log';

/** As OpenHands' bash event pub/sub. */
export const MAX_BASH_SUBSCRIBERS = 50;
/** Unsent bytes a subscriber may lag behind before it is closed with 1013. */
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;
const TRUE_VALUES = ['true', '1', 'yes', 'on'];
const BOOL_VALUES = [...TRUE_VALUES, 'false', '0', 'no', 'off'];

function bashError(code: string, detail: string): BashError {
  return { id: bashEventId(), timestamp: bashTimestamp(), code, detail, kind: 'BashError' };
}

/** A redundant `{"type":"auth",…}` frame (clients that authenticate by first frame send one): ignored. */
function isAuthFrame(data: unknown): boolean {
  return (
    data !== null && typeof data === 'object' && !Array.isArray(data) && (data as { type?: unknown }).type === 'auth' && Object.keys(data).every((k) => k === 'type' || k === 'session_api_key')
  );
}

/**
 * `WS /sockets/bash-events` (contract §4.2), the token already checked: with `resend_mode=all` (or
 * `resend_all=true`) every stored event first, in file-name order, then every new event as it is
 * stored, each exactly once (JSON with nulls). Frames `{"command","cwd"?,"timeout"?}` start
 * commands; what cannot be started comes back as a BashError.
 */
export function serveBashSocket(ws: WebSocket, query: URLSearchParams, bash: BashService, store: BashEventStore, activity: Activity): void {
  const resendMode = query.get('resend_mode');
  const resendAll = query.get('resend_all')?.toLowerCase();
  if ((resendMode !== null && resendMode !== 'all') || (resendAll !== undefined && !BOOL_VALUES.includes(resendAll))) {
    ws.close(1008, 'Invalid resend_mode');
    return;
  }
  if (bash.subscriberCount >= MAX_BASH_SUBSCRIBERS) {
    ws.close(1013, 'Too many bash event connections');
    return;
  }
  activity.touch();
  const replay = resendMode === 'all' || (resendAll !== undefined && TRUE_VALUES.includes(resendAll));

  const sendLive = (event: BashEvent | BashError) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      ws.close(1013, 'Bash event subscriber too slow');
      return;
    }
    ws.send(JSON.stringify(event));
  };

  // Live events that arrive during the replay wait for it, and are not sent twice.
  let backlog: BashEvent[] | null = replay ? [] : null;
  const unsubscribe = bash.subscribe((event) => {
    if (backlog) backlog.push(event);
    else sendLive(event);
  });
  ws.on('close', unsubscribe);
  ws.on('error', () => undefined);

  ws.on('message', (raw, isBinary) => {
    activity.touch();
    let data: unknown;
    try {
      data = JSON.parse(isBinary ? Buffer.from(raw as Buffer).toString('utf8') : raw.toString());
    } catch (err) {
      return sendLive(bashError('JSONDecodeError', (err as Error).message));
    }
    if (isAuthFrame(data)) return;
    const request = ExecuteBashRequestSchema.safeParse(data);
    if (!request.success) return sendLive(bashError('ValidationError', formatZodIssues(request.error)));
    bash.start(request.data).catch((err: Error) => sendLive(bashError(err.name === 'HttpError' ? 'HTTPException' : err.name || 'Error', err.message)));
  });

  if (!replay) return;
  void (async () => {
    const sent = new Set<string>();
    try {
      for await (const event of store.all()) {
        if (ws.readyState !== WebSocket.OPEN) return;
        sent.add(event.id);
        // The replay waits for each frame to be written: a long history never piles up in memory.
        await new Promise<void>((resolve) => ws.send(JSON.stringify(event), () => resolve()));
      }
    } catch (err) {
      logLine('warn', 'bash event replay failed', err);
    }
    const waiting = backlog ?? [];
    backlog = null;
    for (const event of waiting) if (!sent.has(event.id)) sendLive(event);
  })();
}
