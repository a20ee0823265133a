import { McpToolInfo, SECURITY_RISKS } from '@berth/contracts';

type Json = Record<string, any>;

/** The SDK's summary parameter description (openhands.sdk.mcp.tool `_get_tool_schema`). */
const SUMMARY_DESCRIPTION =
  "A concise summary (approximately 10 words) describing what this specific action does. Focus on the key operation and target. Example: 'List all Python files in current directory'";

const SECURITY_RISK_DESCRIPTION = "The LLM's assessment of the safety risk of this action.";

/** ToolAnnotations' defaults (openhands.sdk.tool.ToolAnnotations), filled under what a server declares. */
const ANNOTATION_DEFAULTS = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true };
const ANNOTATION_KEYS = ['title', 'readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const;

/**
 * `_process_schema_node` of openhands.sdk.tool.schema: `$ref`s into `$defs` resolved (a cycle
 * becomes a bare object), `anyOf` reduced to its first non-null branch, and only type, description,
 * properties / required, items and enum kept, in that order.
 */
export function processSchemaNode(node: unknown, defs: Json, visiting: ReadonlySet<string> = new Set()): Json {
  if (typeof node === 'boolean') return node ? {} : { not: {} };
  if (!node || typeof node !== 'object') return {};
  const n = node as Json;
  if (typeof n.$ref === 'string' && n.$ref.startsWith('#/$defs/')) {
    const name = n.$ref.split('/').pop()!;
    if (name in defs) {
      if (visiting.has(name)) {
        const target = defs[name] as Json;
        return { type: 'object', ...(target?.description ? { description: target.description } : {}) };
      }
      return processSchemaNode(defs[name], defs, new Set([...visiting, name]));
    }
  }
  const out: Json = {};
  if ('type' in n) out.type = n.type;
  if (Array.isArray(n.anyOf)) {
    let branches = n.anyOf.filter((t: unknown) => t === true || (t && typeof t === 'object' && (t as Json).type !== 'null'));
    if (!branches.length && n.anyOf.some((t: unknown) => t === false)) branches = [false];
    if (branches.length) Object.assign(out, processSchemaNode(branches[0], defs, visiting));
  }
  if ('description' in n) out.description = n.description;
  if (n.type === 'object' && n.properties && typeof n.properties === 'object') {
    out.type = 'object';
    out.properties = Object.fromEntries(Object.entries(n.properties).map(([key, value]) => [key, processSchemaNode(value, defs, visiting)]));
    if ('required' in n) out.required = n.required;
  }
  if (n.type === 'array' && 'items' in n) {
    out.type = 'array';
    out.items = processSchemaNode(n.items, defs, visiting);
  }
  if ('enum' in n) out.enum = n.enum;
  return out;
}

/**
 * The LLM's parameters of an MCP tool (`MCPToolDefinition._get_tool_schema` with the agent's
 * `add_security_risk_prediction=True`): the server's schema with `security_risk` (unless the tool
 * is read-only) and `summary` first.
 */
export function mcpToolParameters(tool: McpToolInfo): Json {
  const raw = structuredClone(tool.inputSchema ?? { type: 'object' }) as Json;
  const schema = processSchemaNode(raw, (raw.$defs as Json) ?? {});
  const own: Json = schema.properties ?? {};
  const first: Json = {};
  if (tool.annotations?.readOnlyHint !== true) first.security_risk = { type: 'string', description: SECURITY_RISK_DESCRIPTION, enum: SECURITY_RISKS };
  else if ('security_risk' in own) first.security_risk = own.security_risk;
  first.summary = own.summary ?? { type: 'string', description: SUMMARY_DESCRIPTION };
  schema.properties = { ...first, ...own, ...first };
  return schema;
}

/** `annotations` of the ToolDefinition (the server's, over the SDK's defaults), or null when the server declares none. */
export function mcpToolAnnotations(tool: McpToolInfo): Json | null {
  if (!tool.annotations) return null;
  const declared = Object.fromEntries(ANNOTATION_KEYS.filter((key) => tool.annotations![key] != null).map((key) => [key, tool.annotations![key]]));
  return { title: null, ...ANNOTATION_DEFAULTS, ...declared };
}

/** `MCPToolDefinition` as SystemPromptEvent.tools lists it (the SDK's model_dump; nulls are dropped when stored). */
export function mcpToolDefinitionJson(tool: McpToolInfo): Json {
  const mcpTool: Json = { name: tool.name };
  for (const key of ['title', 'description', 'inputSchema', 'outputSchema', 'annotations', '_meta'] as const) if (tool[key] !== undefined) mcpTool[key] = tool[key];
  const annotations = mcpToolAnnotations(tool);
  return {
    description: tool.description || 'No description provided',
    action_type: 'MCPToolAction',
    observation_type: 'MCPToolObservation',
    annotations,
    meta: tool._meta ?? null,
    mcp_tool: mcpTool,
    kind: 'MCPToolDefinition',
    title: (annotations?.title as string | null) ?? tool.name,
  };
}

const JSON_TYPES: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  array: (v) => Array.isArray(v),
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  null: (v) => v === null,
};

/**
 * The arguments of a call checked against the tool's input schema, as the SDK's dynamic action model
 * does (`action_from_arguments`): nulls dropped, required fields present, no field the schema does
 * not name, top-level types right. Returns the arguments to send, or what is wrong.
 */
export function checkMcpArguments(tool: McpToolInfo, args: unknown): { data: Json } | { error: string } {
  if (!JSON_TYPES.object(args)) return { error: `Arguments of MCP tool '${tool.name}' must be a JSON object` };
  const schema = (tool.inputSchema ?? {}) as Json;
  const properties: Json = schema.properties ?? {};
  const data = Object.fromEntries(Object.entries(args as Json).filter(([, value]) => value !== null));
  const problems: string[] = [];
  for (const name of (schema.required as string[] | undefined) ?? []) if (!(name in data)) problems.push(`${name}: Field required`);
  for (const [name, value] of Object.entries(data)) {
    const spec = properties[name] as Json | undefined;
    if (!spec) {
      problems.push(`${name}: Extra inputs are not permitted`);
      continue;
    }
    const types = Array.isArray(spec.type) ? spec.type : typeof spec.type === 'string' ? [spec.type] : [];
    if (types.length && !types.some((t: string) => JSON_TYPES[t]?.(value) ?? true)) problems.push(`${name}: Input should be ${types.join(' or ')}`);
    if (Array.isArray(spec.enum) && !spec.enum.some((option: unknown) => JSON.stringify(option) === JSON.stringify(value))) problems.push(`${name}: Input should be one of ${JSON.stringify(spec.enum)}`);
  }
  if (problems.length) return { error: `Validation error for MCP tool '${tool.name}' args: ${problems.length} validation error(s): ${problems.join('; ')}` };
  return { data };
}
