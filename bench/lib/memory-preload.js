'use strict';
/**
 * Preloaded (`node --require`) into a Berth child by bench/memory.bench.js, with the IPC channel open.
 * Keeps the WebAssembly memories the process creates (PGlite's, Prisma's query compiler's) and
 * answers {cmd:'memory'} with what only the process itself knows: V8's heap and those memories' sizes.
 * The bench finds their resident part in /proc/<pid>/smaps (each is one mapping of its size).
 */
const v8 = require('node:v8');

const memories = new Set();
const keepExported = (instance) => {
  for (const value of Object.values(instance?.exports ?? {})) if (value instanceof WebAssembly.Memory) memories.add(value);
};
const { Memory, Instance, instantiate } = WebAssembly;
WebAssembly.Memory = new Proxy(Memory, {
  construct(target, args, newTarget) {
    const memory = Reflect.construct(target, args, newTarget);
    memories.add(memory);
    return memory;
  },
});
WebAssembly.Instance = new Proxy(Instance, {
  construct(target, args, newTarget) {
    const instance = Reflect.construct(target, args, newTarget);
    keepExported(instance);
    return instance;
  },
});
WebAssembly.instantiate = async function (...args) {
  const result = await instantiate.apply(this, args);
  keepExported(result.instance ?? result);
  return result;
};

process.on('message', (msg) => {
  if (msg?.cmd !== 'memory') return;
  const heap = v8.getHeapStatistics();
  process.send({
    reply: 'memory',
    heapPhysicalBytes: heap.total_physical_size,
    heapUsedBytes: heap.used_heap_size,
    wasmBytes: [...memories].map((m) => m.buffer.byteLength),
  });
});
