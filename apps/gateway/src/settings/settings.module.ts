import { Module } from '@nestjs/common';
import { LlmProfilesService } from './llm-profiles.service';
import { ProfilesController } from './profiles.controller';
import { SecretsController } from './secrets.controller';
import { SecretsService } from './secrets.service';
import { SettingsVault } from './settings-vault';
import { SettingsController } from './settings.controller';
import { SettingsService } from './settings.service';

@Module({
  controllers: [SettingsController, SecretsController, ProfilesController],
  providers: [SettingsService, SecretsService, LlmProfilesService, SettingsVault],
  // SettingsService.revealSecret: for POST /api/conversations with `secrets_encrypted: true`.
  exports: [SettingsService],
})
export class SettingsModule {}
