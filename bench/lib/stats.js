'use strict';
/** Latency statistics and number formatting shared by the benchmarks. */

/** Nearest-rank percentile (p in 0..100) of an ascending-sorted array-like. */
function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** { n, mean, p50, p95, p99, max, min } of latencies in milliseconds (input is not modified). */
function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    min: sorted.length ? sorted[0] : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

/** Milliseconds with a precision that suits the magnitude: 0.412, 4.12, 41.2, 412. */
function ms(v) {
  if (!Number.isFinite(v)) return '-';
  if (v < 1) return v.toFixed(3);
  if (v < 10) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return v.toFixed(0);
}

/** Integer with thin grouping: 12 345. */
function int(v) {
  if (!Number.isFinite(v)) return '-';
  return Math.round(v).toLocaleString('en-US');
}

/** Plain-text table: rows are arrays of cells; numeric-looking cells are right-aligned. */
function table(header, rows, indent = '  ') {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? '')].length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-\d.,×%x ]+(ms|%|×)?$/.test(String(r[i]))));
  const line = (r) =>
    indent +
    r
      .map((c, i) => {
        const pad = ' '.repeat(Math.max(0, widths[i] - [...c].length));
        return numeric[i] ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(all[0]), indent + widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

module.exports = { percentile, summarize, ms, int, table };
