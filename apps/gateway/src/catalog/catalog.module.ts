import { Module } from '@nestjs/common';
import { CatalogController } from './catalog.controller';
import { ToolsController } from './tools.controller';

@Module({ controllers: [CatalogController, ToolsController] })
export class CatalogModule {}
