import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiQuery, ApiResponse } from '@nestjs/swagger';
import type { OpenAPIObject, ParameterObject, ResponsesObject } from '@nestjs/swagger';
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

/** Documents a JSON response (and the error bodies), with an example answer when given. */
export function ApiJson(status: number, schema: z.ZodType, description = 'Successful response', example?: unknown) {
  return applyDecorators(
    ApiResponse({ status, description, schema: schemaOf(schema) as never, ...(example === undefined ? {} : { example }) }),
    ApiErrors(),
  );
}

/** The error bodies every /api route can give. */
export function ApiErrors() {
  return applyDecorators(
    ApiResponse({ status: 401, description: 'Missing or wrong X-Session-API-Key', schema: ERROR_REF as never }),
    ApiResponse({ status: 422, description: 'Validation error (FastAPI-style detail list)', schema: ERROR_REF as never }),
  );
}

export function ApiJsonBody(schema: z.ZodType, description?: string, example?: unknown) {
  return ApiBody({ schema: schemaOf(schema) as never, description, ...(example === undefined ? {} : { examples: { example: { value: example } } }) });
}

/** The query parameters of a zod object schema, one per member. */
export function queryParametersOf(schema: z.ZodObject): ParameterObject[] {
  return Object.entries(schema.shape).map(([name, member]) => {
    const m = member as z.ZodType;
    const required = !m.safeParse(undefined).success;
    return { name, in: 'query', required, schema: schemaOf(m) as never, description: m.description };
  });
}

/** One ApiQuery per member of a zod object schema of query parameters. */
export function ApiQueryFrom(schema: z.ZodObject) {
  return applyDecorators(...queryParametersOf(schema).map(({ name, required, schema: s, description }) => ApiQuery({ name, required, schema: s, description })));
}

/** The error answers every /api route can give, for an operation documented without decorators. */
export function errorResponses(): ResponsesObject {
  return {
    '401': { description: 'Missing or wrong X-Session-API-Key', content: { 'application/json': { schema: ERROR_REF } } },
    '422': { description: 'Validation error (FastAPI-style detail list)', content: { 'application/json': { schema: ERROR_REF } } },
  };
}

/** Nest's name for a handler (`finalResponse`, `serve[1]` for its second path) in OpenHands' snake_case. */
export function handlerName(_controllerKey: string, methodKey: string): string {
  return methodKey.replace(/\[\d+\]$/, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * FastAPI's operationId (`generate_unique_id`): the handler's name, its path and method, every
 * non-word character `_` — `start_conversation_api_conversations_post`, as OpenHands' document
 * names the route, so clients generated from either have the same method names. Unique and stable
 * by construction.
 */
export function fastapiOperationId(name: string, path: string, method: string): string {
  return `${name}${path}`.replace(/\W/g, '_') + `_${method.toLowerCase()}`;
}

/**
 * The document's operationIds from the handlers' names (the `operationId` of an @ApiOperation, set
 * where OpenHands names the route otherwise, or the method's name), and an explicit empty security
 * list on the operations that declare none (the public probes).
 */
export function finishOperations(document: OpenAPIObject): OpenAPIObject {
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const) {
      const operation = item[method];
      if (!operation) continue;
      operation.operationId = fastapiOperationId(operation.operationId ?? method, path, method);
      operation.security ??= [];
    }
  }
  return document;
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
