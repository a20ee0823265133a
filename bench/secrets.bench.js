'use strict';
/**
 * The start-up pass over stored secrets (SecretKeysService): CPU cost per stored row of checking
 * (MAC only) and of re-encrypting a conversation-sized agent JSON, which decides how long
 * BERTH_SECRET_SCAN_ROWS rows keep a starting gateway's event loop busy. In process, no database.
 */
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const BENCH = 'secrets';

async function run(ctx) {
  const { SecretVault } = require(path.join(ctx.root, 'dist/libs/crypto/src/index.js'));
  const dir = ctx.tmpdir('berth-bench-secrets-');
  const old = new SecretVault('bench-old-key', dir);
  const current = new SecretVault('bench-new-key', dir);
  const rotated = new SecretVault('bench-new-key', dir, ['bench-old-key']);
  // A conversation's agent: two LLM keys and MCP headers among a long system prompt and tools.
  const agent = (vault) =>
    vault.sealAgent({
      kind: 'Agent',
      llm: { model: 'openai/gpt-4o', api_key: 'sk-'.padEnd(60, 'x'), usage_id: 'agent' },
      condenser: { kind: 'LLMSummarizingCondenser', llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-'.padEnd(60, 'y') } },
      mcp_config: { web: { url: 'https://mcp.example', headers: { Authorization: 'Bearer '.padEnd(50, 'z') } } },
      tools: Array.from({ length: 8 }, (_, i) => ({ name: `tool-${i}`, params: {} })),
      agent_context: { system_message_suffix: 'word '.repeat(2000) },
    });
  const rows = 10_000;
  const measure = (label, vault, value) => {
    const stored = JSON.stringify(value);
    const t0 = performance.now();
    for (let i = 0; i < rows; i++) vault.resealTokens(JSON.parse(stored));
    const perRow = ((performance.now() - t0) * 1000) / rows;
    ctx.log(`    ${label}: ${perRow.toFixed(1)} µs per row (${rows} rows: ${((perRow * rows) / 1000).toFixed(0)} ms)`);
    return perRow;
  };
  const checked = measure('check, all under the current key', current, agent(current));
  const rekeyed = measure('re-encrypt, all under the previous key', rotated, agent(old));
  ctx.report({
    bench: BENCH,
    storage: '-',
    target: 'start-up pass per conversation row (informational)',
    measured: `check ${checked.toFixed(1)} µs, re-key ${rekeyed.toFixed(1)} µs per row (3 tokens, 10 kB agent)`,
    ok: null,
  });
}

module.exports = { run };
