import { z } from 'zod';
import { EXECUTOR_TOOL_NAMES, ExecutorToolName } from './tools';

/**
 * `GET /api/tools/catalog` (capability `tool_catalog_v1`): the tools a client may configure an
 * agent with, in OpenHands' `ToolCatalogEntry` shape. Berth's agent has the three sandbox tools;
 * `finish` and `think` are built-ins every agent gets (not user-selectable, so not offered, as in
 * OpenHands), and a tool Berth does not have is not listed at all (an agent naming one never gets it).
 */
export const ToolCatalogEntrySchema = z
  .object({
    name: z.string(),
    user_selectable: z.boolean().describe('Offered to users configuring an agent'),
    usable: z.boolean().describe('The runtime conversations run in can run it'),
    description: z.string(),
    in_default_set: z.boolean().describe('A profile with unset `tools` gets it'),
  })
  .meta({ id: 'ToolCatalogEntry' });
export type ToolCatalogEntry = z.output<typeof ToolCatalogEntrySchema>;

export const ToolCatalogResponseSchema = z.object({ tools: z.array(ToolCatalogEntrySchema) }).meta({ id: 'ToolCatalogResponse' });

/** `GET /api/tools/`: the names of the registered tools (built-ins are not registered tools). */
export const ToolNamesSchema = z.array(z.string()).meta({ id: 'ToolNames' });

/** The catalog descriptions OpenHands gives these tools. */
const CATALOG_DESCRIPTIONS: Record<ExecutorToolName, string> = {
  terminal: 'Run shell commands in a persistent terminal session.',
  file_editor: 'View, create and edit files.',
  task_tracker: 'Keep a running task list to organise multi-step work.',
};

export function registeredToolNames(): string[] {
  return [...EXECUTOR_TOOL_NAMES];
}

export function toolCatalog(): { tools: ToolCatalogEntry[] } {
  return {
    tools: EXECUTOR_TOOL_NAMES.map((name) => ({ name, user_selectable: true, usable: true, description: CATALOG_DESCRIPTIONS[name], in_default_set: true })),
  };
}
