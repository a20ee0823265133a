let lastMicros = 0;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/**
 * Event timestamps are naive local-time ISO strings with microseconds, as Python's
 * `datetime.now().isoformat()`; they strictly increase within a process so that string filters
 * (`timestamp__gte`/`__lt`) and ordering agree.
 */
export function naiveTimestamp(date?: Date): string {
  let micros = (date ?? new Date()).getTime() * 1000;
  if (!date) {
    micros = Math.max(micros, lastMicros + 1);
    lastMicros = micros;
  }
  return formatNaiveMicros(micros);
}

function formatNaiveMicros(micros: number): string {
  const d = new Date(Math.floor(micros / 1000));
  const frac = micros % 1_000_000;
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(frac, 6)}`
  );
}

/** tz-aware UTC with microseconds, as pydantic serializes `created_at`/`updated_at`. */
export function utcTimestamp(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Normalises a timestamp filter the way OpenHands does: a tz-aware value is converted to server-local
 * naive time, a naive one is taken as local. Returns null when the value is not an ISO datetime.
 */
/** Rejects dates JavaScript would roll over (2024-02-30 → 2024-03-01), as Python's fromisoformat does. */
function isRealDate(v: string): boolean {
  const [y, mo, d] = v.slice(0, 10).split('-').map(Number);
  const probe = new Date(Date.UTC(y, mo - 1, d));
  const [h, mi, s] = [v.slice(11, 13), v.slice(14, 16), v.slice(17, 19)].map((x) => (x ? Number(x) : 0));
  return probe.getUTCFullYear() === y && probe.getUTCMonth() === mo - 1 && probe.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
}

export function normalizeTimestampFilter(value: string): string | null {
  const v = value.trim();
  const m = ISO_RE.exec(v);
  if (!m || !isRealDate(v)) return null;
  const hasZone = Boolean(m[4]);
  if (!hasZone) {
    const parsed = new Date(v.replace(' ', 'T'));
    return Number.isNaN(parsed.getTime()) ? null : v.replace(' ', 'T');
  }
  const parsed = new Date(v);
  if (Number.isNaN(parsed.getTime())) return null;
  const fracDigits = /\.(\d+)/.exec(v)?.[1] ?? '';
  const extraMicros = fracDigits.length > 3 ? Number(fracDigits.slice(3, 6).padEnd(3, '0')) : 0;
  return formatNaiveMicros(parsed.getTime() * 1000 + extraMicros);
}
