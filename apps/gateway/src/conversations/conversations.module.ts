import { Module } from '@nestjs/common';
import { AgentPreparer, ContractToolCatalog, McpToolSource, SandboxToolRuntime } from '@berth/agent';
import { EventRecorder } from '@berth/bus';
import { SecretVault } from '@berth/crypto';
import { EventLog } from '@berth/persistence';
import { SandboxManager } from '@berth/sandbox';
import { SettingsModule } from '../settings/settings.module';
import { WorkspaceModule } from '../workspace/workspace.module';
import { ConversationCounter } from './conversation-counter.service';
import { ConversationWorkspaceController } from './conversation-workspace.controller';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { RunControlService } from './run-control.service';

@Module({
  imports: [WorkspaceModule, SettingsModule],
  controllers: [ConversationsController, ConversationWorkspaceController],
  providers: [
    ConversationsService,
    RunControlService,
    ConversationCounter,
    // The gateway makes the agent ready before a first message (its SystemPromptEvent), as the worker does before a run.
    {
      provide: AgentPreparer,
      inject: [SandboxManager, EventLog, SecretVault, EventRecorder],
      useFactory: (sandboxes: SandboxManager, log: EventLog, vault: SecretVault, recorder: EventRecorder) => {
        const runtime = new SandboxToolRuntime(sandboxes);
        return new AgentPreparer(new ContractToolCatalog(), runtime, log, new McpToolSource(runtime, vault, (id, event) => recorder.broadcast(id, event)));
      },
    },
  ],
  exports: [ConversationsService, RunControlService],
})
export class ConversationsModule {}
