import { Module } from '@nestjs/common';
import { WorkspaceModule } from '../workspace/workspace.module';
import { HooksController } from './hooks.controller';
import { HooksService } from './hooks.service';

@Module({ imports: [WorkspaceModule], controllers: [HooksController], providers: [HooksService] })
export class HooksModule {}
