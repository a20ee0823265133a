#!/usr/bin/env node
// Builds the tree (npm run build) only when a source changed since the last build: `npm start` and
// `npm test` on a built tree start at once. A source is any .ts under apps/, libs/ and bench/, the
// tsconfigs and package.json; a build is stale when one is newer than dist/.build-stamp or the set
// of sources differs from the one it was built from (a deleted or renamed file).
'use strict';
const { execFileSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { readdirSync, readFileSync, statSync, utimesSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');

const root = join(__dirname, '..');
const stampPath = join(root, 'dist', '.build-stamp');
const SOURCE_DIRS = ['apps', 'libs', 'bench'];
const SOURCE_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];

function sources() {
  const found = SOURCE_FILES.map((file) => join(root, file));
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name === 'dist') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) found.push(path);
    }
  };
  for (const dir of SOURCE_DIRS) walk(join(root, dir));
  return found.sort();
}

function stale(files, listHash) {
  let stamp;
  try {
    stamp = { mtimeMs: statSync(stampPath).mtimeMs, listHash: readFileSync(stampPath, 'utf8').trim() };
  } catch {
    return 'no build yet';
  }
  if (stamp.listHash !== listHash) return 'the set of sources changed';
  const newer = files.find((file) => statSync(file).mtimeMs > stamp.mtimeMs);
  return newer ? `${relative(root, newer)} changed` : null;
}

const files = sources();
const listHash = createHash('sha256').update(files.map((f) => relative(root, f)).join('\n')).digest('hex');
const reason = stale(files, listHash);
if (reason) {
  process.stderr.write(`build: ${reason}; compiling\n`);
  // Dated when the build began: a source saved while it ran is newer, and the next start builds again.
  const began = new Date();
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  writeFileSync(stampPath, `${listHash}\n`);
  utimesSync(stampPath, began, began);
}
