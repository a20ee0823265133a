'use strict';
/**
 * Summary of a V8 .cpuprofile: self time per function and per "owner" (npm package, Node internals,
 * the app's own dist/ code, GC, idle), and inclusive time per owner (a sample counts once for every
 * owner on its stack). Also usable from the command line:
 *   node bench/lib/cpuprofile.js file.cpuprofile [topN]
 */
const fs = require('node:fs');
const path = require('node:path');

function owner(url, functionName) {
  if (!url) {
    if (functionName === '(garbage collector)' || functionName === '(idle)' || functionName === '(program)') return functionName;
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return 'app:' + url.slice(dist + 6).split('/').slice(0, 3).join('/');
  return url.replace(/^file:\/\//, '');
}

function frameKey(cf) {
  const file = cf.url ? cf.url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/') : '';
  return `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : ''}`;
}

function summarizeProfile(profile, topN = 15) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? timeDeltas[i] ?? 0; // delta until the next sample
    selfUs.set(samples[i], (selfUs.get(samples[i]) || 0) + dt);
    total += dt;
  }
  const fnSelf = new Map();
  const ownerSelf = new Map();
  const ownerIncl = new Map();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    const cf = node.callFrame;
    const k = frameKey(cf);
    fnSelf.set(k, (fnSelf.get(k) || 0) + us);
    const o = owner(cf.url, cf.functionName);
    ownerSelf.set(o, (ownerSelf.get(o) || 0) + us);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur).callFrame;
      const oo = owner(c.url, c.functionName);
      if (oo === '(native)' || oo === '(root)') continue;
      if (!seen.has(oo)) {
        seen.add(oo);
        ownerIncl.set(oo, (ownerIncl.get(oo) || 0) + us);
      }
    }
  }
  const top = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([name, us]) => ({ name, ms: us / 1000, pct: total ? (100 * us) / total : 0 }));
  return { totalMs: total / 1000, functions: top(fnSelf), ownersSelf: top(ownerSelf), ownersInclusive: top(ownerIncl) };
}

function formatSummary(s, indent = '    ') {
  const lines = [];
  const block = (title, rows) => {
    lines.push(`${indent}${title}`);
    for (const r of rows) lines.push(`${indent}  ${r.pct.toFixed(1).padStart(5)}%  ${r.name}`);
  };
  lines.push(`${indent}profile: ${(s.totalMs / 1000).toFixed(2)} s of samples`);
  block('self time by function:', s.functions);
  block('self time by owner:', s.ownersSelf);
  block('inclusive time by owner (on stack):', s.ownersInclusive);
  return lines.join('\n');
}

module.exports = { summarizeProfile, formatSummary };

if (require.main === module) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    console.error(`usage: node ${path.relative(process.cwd(), __filename)} file.cpuprofile [topN]`);
    process.exit(2);
  }
  console.log(formatSummary(summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')), Number(n) || 20)));
}
