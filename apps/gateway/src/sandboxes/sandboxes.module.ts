import { Module } from '@nestjs/common';
import { SandboxesController } from './sandboxes.controller';
import { SandboxesService } from './sandboxes.service';

@Module({
  controllers: [SandboxesController],
  providers: [SandboxesService],
  exports: [SandboxesService],
})
export class SandboxesModule {}
