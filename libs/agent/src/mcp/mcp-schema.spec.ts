import { checkMcpArguments, mcpToolAnnotations, mcpToolParameters } from './mcp-schema';

/** The SDK's answers below were printed by openhands-sdk 1.58.2 (`MCPToolDefinition.to_openai_tool(add_security_risk_prediction=True)`). */
describe('MCP tool schemas as the SDK makes them', () => {
  const plot = {
    name: 'plot',
    inputSchema: {
      type: 'object',
      $defs: {
        Point: { type: 'object', description: 'A point', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x'] },
        Node: { type: 'object', description: 'tree', properties: { child: { $ref: '#/$defs/Node' } } },
      },
      properties: {
        where: { $ref: '#/$defs/Point' },
        mode: { anyOf: [{ type: 'null' }, { type: 'string', enum: ['a', 'b'] }], description: 'the mode', default: null },
        tree: { $ref: '#/$defs/Node' },
        tags: { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'integer' }] } },
        summary: { type: 'string', description: 'own summary' },
      },
      required: ['where'],
    },
  };

  it('resolves $refs (a cycle becomes a bare object), reduces anyOf, keeps a summary of its own, and puts security_risk and summary first', () => {
    expect(JSON.stringify(mcpToolParameters(plot))).toBe(
      JSON.stringify({
        type: 'object',
        properties: {
          security_risk: { type: 'string', description: "The LLM's assessment of the safety risk of this action.", enum: ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH'] },
          summary: { type: 'string', description: 'own summary' },
          where: { type: 'object', description: 'A point', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x'] },
          mode: { type: 'string', enum: ['a', 'b'], description: 'the mode' },
          tree: { type: 'object', description: 'tree', properties: { child: { type: 'object', description: 'tree' } } },
          tags: { type: 'array', items: { type: 'string' } },
        },
        required: ['where'],
      }),
    );
  });

  it('offers no security_risk on a read-only tool, and fills annotations with the SDK defaults', () => {
    const tool = { name: 'look', inputSchema: { type: 'object', properties: {} }, annotations: { readOnlyHint: true } };
    expect(Object.keys(mcpToolParameters(tool).properties)).toEqual(['summary']);
    expect(mcpToolAnnotations(tool)).toEqual({ title: null, readOnlyHint: true, destructiveHint: true, idempotentHint: false, openWorldHint: true });
    expect(mcpToolAnnotations({ name: 'x', inputSchema: {} })).toBeNull();
  });

  it('checks arguments as the dynamic action model does: nulls dropped, required present, no extra field, types right', () => {
    expect(checkMcpArguments(plot, { where: { x: 1 }, mode: null })).toEqual({ data: { where: { x: 1 } } });
    const wrong = checkMcpArguments(plot, { tags: 'a', extra: 1 });
    expect('error' in wrong && wrong.error).toBe(
      "Validation error for MCP tool 'plot' args: 3 validation error(s): where: Field required; tags: Input should be array; extra: Extra inputs are not permitted",
    );
    expect(checkMcpArguments(plot, [1])).toEqual({ error: "Arguments of MCP tool 'plot' must be a JSON object" });
  });
});
