'use strict';
/**
 * FakeKube (libs/testing, built) as a process of its own, for benchmarks: the control plane under
 * measure never shares an event loop with the stand-in's API server and kubelet.
 *   node bench/lib/fake-kube-server.js <dataDir> <kubeconfig path>
 * Writes the kubeconfig, prints `ready`, and stops on SIGTERM (its pods with it).
 */
const path = require('node:path');
const { FakeKube } = require(path.join(__dirname, '../../dist/libs/testing/src/index.js'));

async function main() {
  const [dataDir, kubeconfig] = process.argv.slice(2);
  const fake = await FakeKube.start({ dataDir });
  fake.writeKubeconfig(kubeconfig);
  process.stdout.write('ready\n');
  const stop = () => fake.close().finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
