import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiQuery, ApiResponse } from '@nestjs/swagger';
import type { OpenAPIObject } from '@nestjs/swagger';
import { z } from 'zod';

/**
 * The document is OpenAPI 3.1 (as the OpenHands server's), whose schema objects are JSON Schema
 * 2020-12: zod's own target, so `null` unions and `$ref` siblings come out valid as they are.
 */
const JSON_SCHEMA_OPTIONS = { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' } as const;
const componentRef = (id: string) => `#/components/schemas/${id}`;

/**
 * JSON schema of a zod schema: a $ref when it is registered with an id, inline otherwise. An inline
 * schema's registered members come out as `$defs` (zod's local refs); they point to the components
 * instead, where addZodComponents puts every registered schema.
 */
export function schemaOf(schema: z.ZodType): Record<string, unknown> {
  const id = z.globalRegistry.get(schema)?.id;
  if (id) return { $ref: componentRef(id) };
  const json = z.toJSONSchema(schema, JSON_SCHEMA_OPTIONS) as Record<string, unknown>;
  delete json.$schema;
  const defs = (json.$defs ?? {}) as Record<string, unknown>;
  delete json.$defs;
  const unregistered = Object.keys(defs).filter((name) => !z.globalRegistry._idmap.has(name));
  // Only cycles through unregistered schemas would land here; they need an id to be documented.
  if (unregistered.length) throw new Error(`Register these schemas with an id to document them: ${unregistered.join(', ')}`);
  return pointDefsAtComponents(json) as Record<string, unknown>;
}

function pointDefsAtComponents(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(pointDefsAtComponents);
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) =>
      key === '$ref' && typeof value === 'string' && value.startsWith('#/$defs/')
        ? [key, componentRef(value.slice('#/$defs/'.length))]
        : [key, pointDefsAtComponents(value)],
    ),
  );
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
  const { schemas } = z.toJSONSchema(z.globalRegistry, { ...JSON_SCHEMA_OPTIONS, uri: componentRef }) as unknown as {
    schemas: Record<string, Record<string, unknown>>;
  };
  document.components ??= {};
  document.components.schemas ??= {};
  for (const [id, schema] of Object.entries(schemas)) {
    // A component is named by its key; an `$id` would make its refs resolve against it as a base URI.
    delete schema.$schema;
    delete schema.$id;
    document.components.schemas[id] = schema as never;
  }
  return document;
}
