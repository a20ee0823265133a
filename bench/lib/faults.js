'use strict';
/**
 * Private dependency servers for outage benchmarks (the shared PostgreSQL and Redis serve other
 * runs and must never be stopped): a Redis and a PostgreSQL cluster of the bench's own, as
 * children it stops and starts again on the same port. Ended (and their data removed) at exit.
 * The tests have the same in test/support/faults.ts (TypeScript, with kill -9 and freeze too).
 */
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { freePort, children } = require('./proc');

async function until(check, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function succeeds(file, args) {
  try {
    execFileSync(file, args, { stdio: 'pipe', timeout: 3000 });
    return true;
  } catch {
    return false;
  }
}

/** A server child that can be stopped (its signal) and started again; cleaned up through ctx.defer. */
function controllable(ctx, name, spawnServer, accepting, stopSignal) {
  let child = null;
  const server = {
    async start() {
      child = spawnServer();
      children.add(child);
      child.once('exit', () => children.delete(child));
      await until(accepting, name);
    },
    async stop() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(stopSignal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  ctx.defer(`stop private ${name}`, () => server.stop());
  return server;
}

async function privateRedis(ctx) {
  const port = await freePort();
  const dir = ctx.tmpdir('berth-bench-redis-');
  const server = controllable(
    ctx,
    'redis',
    () => spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }),
    () => succeeds('redis-cli', ['-p', String(port), 'ping']),
    'SIGTERM',
  );
  await server.start();
  return { ...server, url: `redis://127.0.0.1:${port}` };
}

/** PostgreSQL refuses root: the cluster belongs to, and runs as, the postgres OS user. */
async function privatePostgres(ctx) {
  const version = fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))[0];
  const bin = (name) => `/usr/lib/postgresql/${version}/bin/${name}`;
  const user = { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) };
  const port = await freePort();
  const dir = ctx.tmpdir('berth-bench-pg-');
  fs.chownSync(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  execFileSync(bin('initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], { ...user, stdio: 'pipe', timeout: 60_000 });
  const server = controllable(
    ctx,
    'postgres',
    () => spawn(bin('postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'], { ...user, stdio: 'ignore' }),
    () => succeeds(bin('pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-t', '1']),
    'SIGINT',
  );
  await server.start();
  return { ...server, url: `postgresql://postgres@127.0.0.1:${port}/postgres` };
}

module.exports = { privateRedis, privatePostgres };
