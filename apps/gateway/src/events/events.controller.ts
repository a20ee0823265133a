import { Body, Controller, Get, Header, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  ConfirmationResponseRequestSchema,
  CountSchema,
  EventIdsBodySchema,
  EventPageSchema,
  EventSchema,
  EventSearchQuerySchema,
  SendMessageRequestSchema,
  SuccessSchema,
} from '@berth/contracts';
import { z } from 'zod';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiQueryFrom } from '../common/api-docs';
import { SEND_MESSAGE_EXAMPLE } from '../common/api-examples';
import { UuidPipe } from '../common/id.pipe';
import { CurrentPrincipal } from '../common/tenant.decorator';
import type { Principal } from '../common/tenant.decorator';
import { ZodPipe } from '../common/zod-validation.pipe';
import { EventsService } from './events.service';

const EventCountQuerySchema = EventSearchQuerySchema.omit({ page_id: true, limit: true, sort_order: true });
const EventBatchQuerySchema = z.looseObject({
  event_ids: z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(z.string().max(200)).max(100).optional()),
});
const SUCCESS = { success: true };
/** What Fastify sends for a serialized object; the search answer is JSON text already. */
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

@ApiTags('Events')
@ApiSecurity('session-api-key')
@UseGuards(ApiKeyGuard)
@Controller('api/conversations/:conversation_id/events')
export class EventsController {
  constructor(private readonly events: EventsService) {}

  @Get('search')
  @ApiOperation({ operationId: 'search_conversation_events', summary: 'Search events; kind accepts bare (MessageEvent) or qualified (openhands.sdk…MessageEvent) names' })
  @ApiQueryFrom(EventSearchQuerySchema)
  @ApiJson(200, EventPageSchema)
  @Header('content-type', JSON_CONTENT_TYPE)
  search(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Query(new ZodPipe(EventSearchQuerySchema, 'query')) q: z.output<typeof EventSearchQuerySchema>,
  ): Promise<string> {
    return this.events.searchJson(p, id, q);
  }

  @Get('count')
  @ApiOperation({ operationId: 'count_conversation_events', summary: 'Count events matching the filters (a bare integer)' })
  @ApiQueryFrom(EventCountQuerySchema)
  @ApiJson(200, CountSchema)
  count(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Query(new ZodPipe(EventCountQuerySchema, 'query')) q: z.output<typeof EventCountQuerySchema>,
  ) {
    return this.events.count(p, id, q);
  }

  @Get(':event_id')
  @ApiOperation({ operationId: 'get_conversation_event', summary: 'Get one event' })
  @ApiJson(200, EventSchema)
  get(@CurrentPrincipal() p: Principal, @Param('conversation_id', new UuidPipe()) id: string, @Param('event_id') eventId: string) {
    return this.events.get(p, id, eventId);
  }

  @Get()
  @ApiOperation({ operationId: 'batch_get_conversation_events', summary: 'Get events by id: a JSON array body (as OpenHands) or ?event_ids=…; null for unknown ids' })
  @ApiJsonBody(EventIdsBodySchema)
  @ApiQueryFrom(EventBatchQuerySchema)
  @ApiJson(200, z.array(EventSchema.nullable()))
  batch(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Query(new ZodPipe(EventBatchQuerySchema, 'query')) q: z.output<typeof EventBatchQuerySchema>,
    @Body() body: unknown,
  ) {
    const ids = q.event_ids ?? new ZodPipe(EventIdsBodySchema).transform(body);
    return this.events.batch(p, id, ids);
  }

  @Post()
  @HttpCode(200)
  @ApiOperation({ operationId: 'send_message', summary: 'Send a user message; run:true queues a run' })
  @ApiJsonBody(SendMessageRequestSchema, undefined, SEND_MESSAGE_EXAMPLE)
  @ApiJson(200, SuccessSchema, undefined, { success: true })
  async send(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(SendMessageRequestSchema)) body: z.output<typeof SendMessageRequestSchema>,
  ) {
    await this.events.sendMessage(p, id, body);
    return SUCCESS;
  }

  @Post('respond_to_confirmation')
  @HttpCode(200)
  @ApiOperation({ operationId: 'respond_to_confirmation', summary: 'Accept (run) or reject the actions waiting for confirmation' })
  @ApiJsonBody(ConfirmationResponseRequestSchema)
  @ApiJson(200, SuccessSchema)
  async respond(
    @CurrentPrincipal() p: Principal,
    @Param('conversation_id', new UuidPipe()) id: string,
    @Body(new ZodPipe(ConfirmationResponseRequestSchema)) body: z.output<typeof ConfirmationResponseRequestSchema>,
  ) {
    await this.events.respondToConfirmation(p, id, body.accept, body.reason);
    return SUCCESS;
  }
}
