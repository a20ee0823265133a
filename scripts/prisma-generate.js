// Generates the Prisma client after `npm ci`. Prisma 7's CLI insists on a schema-engine binary it
// cannot download here; generate does not use it, so any existing file satisfies the check.
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= '/bin/true';
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1';
const cli = path.join(__dirname, '..', 'node_modules', 'prisma', 'build', 'index.js');
execFileSync(process.execPath, [cli, 'generate'], { stdio: 'inherit', env, cwd: path.join(__dirname, '..') });
