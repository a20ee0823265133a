import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { unsafeInputIssue } from '@berth/contracts';
import type { FastifyRequest } from 'fastify';
import { Observable } from 'rxjs';
import { MalformedJson, ValidationFailed } from './zod-validation.pipe';

/**
 * One check of every request's path parameters, query and JSON body, whatever the route, before
 * any handler or pipe sees them (after auth): a NUL character anywhere (PostgreSQL text and jsonb
 * cannot hold one; it failed deep inside the database) or nesting deeper than MAX_INPUT_DEPTH
 * answers 422, the value not echoed.
 */
@Injectable()
export class UnsafeInputInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() === 'http') {
      const request = context.switchToHttp().getRequest<FastifyRequest>();
      const issue =
        unsafeInputIssue(request.params, 'path') ??
        unsafeInputIssue(request.query, 'query') ??
        (request.body instanceof MalformedJson ? null : unsafeInputIssue(request.body, 'body'));
      if (issue) throw new ValidationFailed([issue]);
    }
    return next.handle();
  }
}
