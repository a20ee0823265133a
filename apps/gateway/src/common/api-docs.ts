import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiQuery, ApiResponse } from '@nestjs/swagger';
import type { OpenAPIObject } from '@nestjs/swagger';
import { z } from 'zod';

/** JSON schema of a zod schema: a $ref when it is registered with an id, inline otherwise. */
export function schemaOf(schema: z.ZodType): Record<string, unknown> {
  const id = z.globalRegistry.get(schema)?.id;
  if (id) return { $ref: `#/components/schemas/${id}` };
  const json = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

const ERROR_REF = { $ref: '#/components/schemas/ErrorBody' };

/** Documents a JSON response (and the error bodies every /api route can give). */
export function ApiJson(status: number, schema: z.ZodType, description = 'Successful response') {
  return applyDecorators(
    ApiResponse({ status, description, schema: schemaOf(schema) as never }),
    ApiResponse({ status: 401, description: 'Missing or wrong X-Session-API-Key', schema: ERROR_REF as never }),
    ApiResponse({ status: 422, description: 'Validation error (FastAPI-style detail list)', schema: ERROR_REF as never }),
  );
}

export function ApiJsonBody(schema: z.ZodType, description?: string) {
  return ApiBody({ schema: schemaOf(schema) as never, description });
}

/** One ApiQuery per member of a zod object schema of query parameters. */
export function ApiQueryFrom(schema: z.ZodObject) {
  return applyDecorators(
    ...Object.entries(schema.shape).map(([name, member]) => {
      const m = member as z.ZodType;
      const required = !m.safeParse(undefined).success;
      return ApiQuery({ name, required, schema: schemaOf(m) as never, description: m.description });
    }),
  );
}

/** Adds every registered zod schema to the document's components. */
export function addZodComponents(document: OpenAPIObject): OpenAPIObject {
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as unknown as { schemas: Record<string, Record<string, unknown>> };
  document.components ??= {};
  document.components.schemas ??= {};
  for (const [id, schema] of Object.entries(schemas)) {
    delete schema.$schema;
    delete schema.id;
    document.components.schemas[id] = schema as never;
  }
  return document;
}
