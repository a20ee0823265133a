import { DynamicModule, Module } from '@nestjs/common';
import { AgentModule, platformModules } from '@berth/agent';
import type { BerthConfig } from '@berth/config';
import { AdminModule } from './admin/admin.module';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { CatalogModule } from './catalog/catalog.module';
import { ConversationOpsModule } from './conversation-ops/conversation-ops.module';
import { CondensationModule } from './condensation/condensation.module';
import { ConversationsModule } from './conversations/conversations.module';
import { EventsModule } from './events/events.module';
import { HealthModule } from './health/health.module';
import { HooksModule } from './hooks/hooks.module';
import { MetricsModule } from './metrics/metrics.module';
import { QuotasModule } from './quotas/quotas.module';
import { SandboxesModule } from './sandboxes/sandboxes.module';
import { SecretKeysModule } from './secret-keys/secret-keys.module';
import { SettingsModule } from './settings/settings.module';
import { SocketsModule } from './sockets/sockets.module';
import { WorkspaceModule } from './workspace/workspace.module';

@Module({})
export class AppModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ...platformModules(config),
        QuotasModule,
        AuditModule,
        AuthModule,
        AdminModule,
        HealthModule,
        MetricsModule,
        ConversationsModule,
        ConversationOpsModule,
        EventsModule,
        CondensationModule,
        SocketsModule,
        SandboxesModule,
        WorkspaceModule,
        HooksModule,
        SettingsModule,
        SecretKeysModule,
        CatalogModule,
        // The embedded default (and any `--role all`) runs the workers in the same process.
        ...(config.role === 'all' ? [AgentModule.forRoot()] : []),
      ],
    };
  }
}
