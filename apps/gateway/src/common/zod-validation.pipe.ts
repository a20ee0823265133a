import { HttpException, Injectable, PipeTransform } from '@nestjs/common';
import { toValidationIssues, ValidationIssue } from '@berth/contracts';
import { z } from 'zod';

/** Marks a request body that was not valid JSON; the pipe turns it into FastAPI's 422. */
export class MalformedJson {
  constructor(
    readonly position: number,
    readonly error: string,
  ) {}
}

export class ValidationFailed extends HttpException {
  constructor(issues: ValidationIssue[]) {
    super({ detail: issues }, 422);
  }
}

export function validationError(location: string, loc: (string | number)[], msg: string, type = 'value_error', input?: unknown): ValidationFailed {
  const issue: ValidationIssue = { type, loc: [location, ...loc], msg };
  if (input !== undefined) issue.input = input;
  return new ValidationFailed([issue]);
}

/** Validates one part of a request (body, query, path) against a zod schema; 422 on failure. */
@Injectable()
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(
    private readonly schema: S,
    private readonly location: 'body' | 'query' | 'path' = 'body',
  ) {}

  transform(value: unknown): z.output<S> {
    if (value instanceof MalformedJson) {
      throw new ValidationFailed([
        { type: 'json_invalid', loc: ['body', value.position], msg: 'JSON decode error', input: {}, ctx: { error: value.error } } as ValidationIssue,
      ]);
    }
    if (this.location === 'body' && value === undefined) {
      throw validationError('body', [], 'Field required', 'missing', null);
    }
    const result = this.schema.safeParse(value);
    if (!result.success) throw new ValidationFailed(toValidationIssues(result.error, this.location, value));
    return result.data;
  }
}
