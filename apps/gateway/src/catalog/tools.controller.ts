import { Controller, Get, NotFoundException, Req, UseGuards } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { registeredToolNames, toolCatalog, ToolCatalogResponseSchema, ToolNamesSchema } from '@berth/contracts';
import type { FastifyRequest } from 'fastify';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson } from '../common/api-docs';

/** `/api/tools/` and `/api/tools/catalog` (capability `tool_catalog_v1`): the tools Berth's agent has. */
@ApiTags('Tools')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/tools')
export class ToolsController {
  @Get()
  @ApiOperation({ operationId: 'list_available_tools', summary: 'The registered tools: terminal, file_editor, task_tracker (finish and think are built-ins every agent gets)' })
  @ApiJson(200, ToolNamesSchema)
  list(): string[] {
    return registeredToolNames();
  }

  // OpenHands declares the list with its trailing slash (`/api/tools/`, the wildcard left empty);
  // anything else below it is not a route. The document has the bare form only.
  @Get('*')
  @ApiExcludeEndpoint()
  listWithSlash(@Req() request: FastifyRequest): string[] {
    if ((request.params as Record<string, string | undefined>)['*']) throw new NotFoundException({ detail: 'Not Found' });
    return this.list();
  }

  @Get('catalog')
  @ApiOperation({ operationId: 'get_tool_catalog', summary: 'The tools a client may configure an agent with, as OpenHands ToolCatalogEntry rows (only the tools Berth really runs)' })
  @ApiJson(200, ToolCatalogResponseSchema)
  catalog() {
    return toolCatalog();
  }
}
