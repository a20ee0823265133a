/**
 * The contracts the sandbox executor uses — its protocol, the workspace, tool and MCP shapes — without
 * the gateway's conversation, settings and response schemas: zod builds every schema of a module when
 * it is loaded, and loading the whole library cost a cold executor about twice what this part does.
 */
export * from './ids';
export * from './time';
export * from './validation';
export * from './tools';
export * from './workspace';
export * from './executor-protocol';
export * from './mcp';
