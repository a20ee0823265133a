import { DynamicModule, Module } from '@nestjs/common';
import { ConversationStatus, EventBus, EventRecorder } from '@berth/bus';
import { SecretVault } from '@berth/crypto';
import { ConversationRepository, EventLog } from '@berth/persistence';
import { SandboxManager } from '@berth/sandbox';
import { BERTH_CONFIG } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { AgentPreparer } from './agent-ready';
import { AgentRunner, ToolRuntime } from './agent-runner';
import { ToolCatalog } from './agent-tools';
import { RunReconciler } from './run-reconciler';
import { RunWorker } from './run-worker';
import { McpToolSource } from './mcp/mcp-tools';
import { SandboxToolRuntime } from './sandbox-runtime';
import { ContractToolCatalog } from './tool-catalog';

/**
 * The worker side of Berth: takes runs from the queue and runs the agent loop, with tools in the
 * conversation's sandbox. Imported by apps/worker, and by the gateway in the embedded default.
 * Needs the platform modules (platformModules).
 */
@Module({})
export class AgentModule {
  static forRoot(): DynamicModule {
    return {
      module: AgentModule,
      providers: [
        { provide: ToolCatalog, useClass: ContractToolCatalog },
        { provide: ToolRuntime, inject: [SandboxManager], useFactory: (sandboxes: SandboxManager) => new SandboxToolRuntime(sandboxes) },
        {
          provide: AgentPreparer,
          inject: [ToolCatalog, ToolRuntime, EventLog, SecretVault, EventRecorder],
          useFactory: (tools: ToolCatalog, runtime: SandboxToolRuntime, log: EventLog, vault: SecretVault, recorder: EventRecorder) =>
            new AgentPreparer(tools, runtime, log, new McpToolSource(runtime, vault, (id, event) => recorder.broadcast(id, event))),
        },
        {
          provide: AgentRunner,
          inject: [ConversationRepository, EventLog, EventRecorder, ConversationStatus, EventBus, SecretVault, AgentPreparer, ToolRuntime, BERTH_CONFIG],
          useFactory: (
            conversations: ConversationRepository,
            log: EventLog,
            recorder: EventRecorder,
            status: ConversationStatus,
            bus: EventBus,
            vault: SecretVault,
            preparer: AgentPreparer,
            runtime: ToolRuntime,
            config: BerthConfig,
          ) => new AgentRunner(conversations, log, recorder, status, bus, vault, preparer, runtime, config.secretLookupHosts),
        },
        RunWorker,
        RunReconciler,
      ],
      exports: [AgentRunner, RunWorker, RunReconciler],
    };
  }
}
