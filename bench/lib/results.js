'use strict';
/**
 * bench/results.md: what one `npm run bench` measured, as a Markdown table a reader can hold
 * against the targets and anchors — every row the benches reported, with the reference agent
 * server's figure where it did the same work in the same run, and the machine it ran on.
 */
const fs = require('node:fs');

/** A cell that cannot break the table: pipes escaped, line breaks flattened. */
function cell(value) {
  return value === undefined || value === null || value === '' ? '' : String(value).replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function verdict(ok) {
  return ok === true ? 'met' : ok === false ? 'missed' : '—';
}

/**
 * @param run { startedAt: Date, seconds, machine: string, options: string, environment: string[] (the BENCH_* settings), benches: string[], crashed: string[] }
 * @param reports rows of ctx.report: { bench, storage, target, measured, ok, reference?, anchor? }
 */
function renderResults(run, reports) {
  const met = reports.filter((r) => r.ok === true).length;
  const missed = reports.filter((r) => r.ok === false);
  const lines = [
    '# Berth benchmark results',
    '',
    `Written by \`npm run bench\` (bench/run.js) on ${run.startedAt.toISOString().slice(0, 10)} at ${run.startedAt.toISOString().slice(11, 16)} UTC, in ${run.seconds.toFixed(0)} s.`,
    '',
    `- Machine: ${run.machine}`,
    `- Options: ${run.options}${run.environment.length ? `; ${run.environment.join(' ')}` : ''}`,
    `- Benches: ${run.benches.join(', ')}${run.crashed.length ? ` (crashed: ${run.crashed.join(', ')})` : ''}`,
    `- Targets: ${met} met, ${missed.length} missed, ${reports.length - met - missed.length} informational. Figures are printed, never asserted; a machine busy with other work reads slower.`,
    '',
    '"Reference" is the OpenHands agent server measured in the same run where it does the same work; "anchor" is the published figure the target is held against.',
    '',
    '| bench | storage | measure (target) | Berth | reference | anchor | |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...reports.map((r) => `| ${[r.bench, r.storage, r.target, r.measured, r.reference, r.anchor, verdict(r.ok)].map(cell).join(' | ')} |`),
    '',
  ];
  if (missed.length) {
    lines.push('## Missed', '', ...missed.map((r) => `- ${cell(r.bench)} (${cell(r.storage)}): ${cell(r.target)} — ${cell(r.measured)}`), '');
  }
  return lines.join('\n');
}

function writeResults(file, run, reports) {
  fs.writeFileSync(file, renderResults(run, reports));
}

module.exports = { renderResults, writeResults };
