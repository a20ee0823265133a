import { Global, Module } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { ApiKeyGuard } from './api-key.guard';
import { ApiKeyService } from './api-key.service';
import { ApiKeyStrategy } from './api-key.strategy';
import { WorkspaceSessionController } from './workspace-session.controller';

@Global()
@Module({
  imports: [PassportModule.register({ session: false })],
  controllers: [WorkspaceSessionController],
  providers: [ApiKeyService, ApiKeyStrategy, ApiKeyGuard],
  exports: [ApiKeyService, ApiKeyGuard],
})
export class AuthModule {}
