import { PipeTransform } from '@nestjs/common';
import { parseUuid } from '@berth/contracts';
import { validationError } from './zod-validation.pipe';

/** A conversation id in a path: dashed or 32-hex UUID, returned dashed; 422 otherwise (as FastAPI). */
export class UuidPipe implements PipeTransform<string, string> {
  constructor(private readonly name = 'conversation_id') {}

  transform(value: string): string {
    const id = parseUuid(value ?? '');
    if (!id) throw validationError('path', [this.name], 'Input should be a valid UUID', 'uuid_parsing', value);
    return id;
  }
}
