import { Module } from '@nestjs/common';
import { AgentProfileStore } from './agent-profile-store';
import { AgentProfilesController } from './agent-profiles.controller';
import { AgentProfilesService } from './agent-profiles.service';
import { LlmController } from './llm.controller';
import { LlmProfilesService } from './llm-profiles.service';
import { ProfilesController } from './profiles.controller';
import { ProviderConnectionsService } from './provider-connections.service';
import { SecretsController } from './secrets.controller';
import { SecretsService } from './secrets.service';
import { SettingsVault } from './settings-vault';
import { SettingsController } from './settings.controller';
import { SettingsService } from './settings.service';

@Module({
  controllers: [SettingsController, SecretsController, ProfilesController, AgentProfilesController, LlmController],
  providers: [SettingsService, SecretsService, LlmProfilesService, AgentProfilesService, AgentProfileStore, ProviderConnectionsService, SettingsVault],
  // SettingsService: revealSecret (POST /api/conversations with `secrets_encrypted: true`) and
  // launchAgentProfile (with `agent_profile_id`).
  exports: [SettingsService, LlmProfilesService, SettingsVault],
})
export class SettingsModule {}
