'use strict';
/**
 * What Berth's figures are held against, outside this repository. One place, so a bench row and
 * bench/results.md name the same source and figure.
 *
 * computesdk: the sandbox providers benchmark published by computesdk (2026-05): sequential
 * create → first command, and a burst of 100 creates. OpenHands: the budgets of the reference agent
 * server's stress suite (software-agent-sdk tests/agent_server/stress/budgets.py) — what the reference
 * holds itself to; Berth's own targets are tighter.
 */
const ANCHORS = {
  timeToInteractive: 'Daytona p50 186 / p99 560 ms; E2B p50 491 / p99 740 ms (computesdk, 2026-05)',
  burstOf100: 'Daytona: burst of 100 all ready in 900 ms (computesdk, 2026-05)',
  firstPage: 'OpenHands stress budget: first page of 2,000 conversations p95 < 500 ms',
  healthUnderLoad: 'OpenHands stress budget: /health p95 < 50 ms, p99 < 150 ms under background load',
  stalledSubscriber: 'OpenHands stress budget: one stalled subscriber over 200 events grows RSS < 150 MB',
  reconnectStorm: 'OpenHands stress budget: 100 reconnect cycles grow fds by ≤ 16',
  referenceSideBySide: 'the reference agent server 1.58.2, same run, same machine, same scripted LLM',
};

/** Daytona's burst figure in ms, for benches that compare against it numerically. */
const DAYTONA_BURST_MS = 900;

module.exports = { ANCHORS, DAYTONA_BURST_MS };
