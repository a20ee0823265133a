#!/usr/bin/env node
// `node scripts/executor-bundle.js <dir>`: copies into <dir> what the sandbox executor needs at run
// time and nothing else (no LLM, database or Redis client): its compiled code, the workspace
// libraries it requires and the npm packages they require, with those packages' dependencies. The
// executor image (deploy/Dockerfile, target `executor`) is this folder. Run after `npm run build`.
// What is needed is read from the compiled files' require() calls, so a new import is never missed.
'use strict';
const { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } = require('node:fs');
const { builtinModules } = require('node:module');
const { dirname, join, relative } = require('node:path');

const ROOT = join(__dirname, '..');
const ENTRY_DIR = 'dist/apps/executor';
const EXECUTOR_MAIN = `${ENTRY_DIR}/src/main.js`;
const BUILTINS = new Set(builtinModules);

function jsFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...jsFiles(path));
    else if (entry.name.endsWith('.js')) out.push(path);
  }
  return out;
}

/** Bare package names required by the compiled files under dir (not relative, not built in). */
function requiredPackages(dir) {
  const names = new Set();
  for (const file of jsFiles(dir)) {
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/require\("([^"./][^"]*)"\)/g)) {
      if (spec.startsWith('node:') || BUILTINS.has(spec.split('/')[0])) continue;
      names.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  }
  return names;
}

/** Relative paths (from the repository root) of everything the executor needs. */
function executorFiles() {
  if (!existsSync(join(ROOT, EXECUTOR_MAIN))) throw new Error(`${EXECUTOR_MAIN} is missing: run npm run build first`);
  const paths = new Set([ENTRY_DIR]);
  const workspaceLibs = new Set();
  const packages = new Set();
  const pending = [...requiredPackages(join(ROOT, ENTRY_DIR))];
  while (pending.length) {
    const name = pending.pop();
    if (name.startsWith('@berth/')) {
      const lib = name.slice('@berth/'.length);
      if (workspaceLibs.has(lib)) continue;
      workspaceLibs.add(lib);
      // node_modules/@berth/<lib> → libs/<lib> (package.json, its entries: index.js and any other) → dist/libs/<lib>.
      paths.add(`libs/${lib}/package.json`).add(`dist/libs/${lib}`);
      for (const entry of readdirSync(join(ROOT, 'libs', lib))) if (entry.endsWith('.js')) paths.add(`libs/${lib}/${entry}`);
      pending.push(...requiredPackages(join(ROOT, 'dist', 'libs', lib)));
      continue;
    }
    if (packages.has(name)) continue;
    const dir = join(ROOT, 'node_modules', name);
    // An optional dependency that is not installed (ws's bufferutil) is skipped, as at run time.
    if (!existsSync(dir)) continue;
    packages.add(name);
    paths.add(`node_modules/${name}`);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    pending.push(...Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies, ...manifest.peerDependencies }));
  }
  return { paths: [...paths].sort(), workspaceLibs: [...workspaceLibs].sort() };
}

function bundle(outDir) {
  const { paths, workspaceLibs } = executorFiles();
  for (const path of paths) {
    const target = join(outDir, path);
    mkdirSync(dirname(target), { recursive: true });
    cpSync(join(ROOT, path), target, { recursive: statSync(join(ROOT, path)).isDirectory(), dereference: true });
  }
  for (const lib of workspaceLibs) {
    const link = join(outDir, 'node_modules', '@berth', lib);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), join(outDir, 'libs', lib)), link);
  }
  return paths;
}

if (require.main === module) {
  const outDir = process.argv[2];
  if (!outDir) {
    console.error('usage: node scripts/executor-bundle.js <dir>');
    process.exit(2);
  }
  for (const path of bundle(outDir)) console.log(path);
}

module.exports = { bundle, EXECUTOR_MAIN };
