import { Module } from '@nestjs/common';
import { AgentPreparer, ContractToolCatalog, SandboxToolRuntime } from '@berth/agent';
import { EventLog } from '@berth/persistence';
import { SandboxManager } from '@berth/sandbox';
import { SettingsModule } from '../settings/settings.module';
import { ConversationTitlesModule } from '../conversation-ops/conversation-titles.module';
import { WorkspaceModule } from '../workspace/workspace.module';
import { ConversationCounter } from './conversation-counter.service';
import { ConversationWorkspaceController } from './conversation-workspace.controller';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { RunControlService } from './run-control.service';

@Module({
  imports: [WorkspaceModule, SettingsModule, ConversationTitlesModule],
  controllers: [ConversationsController, ConversationWorkspaceController],
  providers: [
    ConversationsService,
    RunControlService,
    ConversationCounter,
    // The gateway makes the agent ready before a first message (its SystemPromptEvent), as the worker does before a run.
    {
      provide: AgentPreparer,
      inject: [SandboxManager, EventLog],
      useFactory: (sandboxes: SandboxManager, log: EventLog) => new AgentPreparer(new ContractToolCatalog(), new SandboxToolRuntime(sandboxes), log),
    },
  ],
  exports: [ConversationsService, RunControlService, ConversationCounter, AgentPreparer, ConversationTitlesModule],
})
export class ConversationsModule {}
