'use strict';
/**
 * Preloaded (`node --require`) into a server child by proc.spawnNode(..., { profile: true }).
 * Driven over the IPC channel: {cmd:'profile-start'} starts the V8 CPU profiler,
 * {cmd:'profile-stop', file} writes a .cpuprofile (Chrome DevTools format) and replies.
 */
const fs = require('node:fs');
const inspector = require('node:inspector');

const session = new inspector.Session();
session.connect();

const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));

process.on('message', async (msg) => {
  if (!msg || typeof msg !== 'object') return;
  try {
    if (msg.cmd === 'profile-start') {
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 200 }); // µs
      await post('Profiler.start');
      process.send({ reply: 'profile-started' });
    } else if (msg.cmd === 'profile-stop') {
      const { profile } = await post('Profiler.stop');
      fs.writeFileSync(msg.file, JSON.stringify(profile));
      process.send({ reply: 'profile-stopped', file: msg.file });
    }
  } catch (err) {
    process.send({ reply: msg.cmd === 'profile-start' ? 'profile-started' : 'profile-stopped', error: String(err && err.message) });
  }
});
if (process.channel) process.channel.unref();
