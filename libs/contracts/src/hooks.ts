import { z } from 'zod';

/** OpenHands' hook events (snake_case; `.openhands/hooks.json` may spell them PascalCase). */
export const HOOK_EVENTS = ['pre_tool_use', 'post_tool_use', 'user_prompt_submit', 'session_start', 'session_end', 'stop'] as const;

const HookDefinitionSchema = z
  .object({
    type: z.enum(['command', 'prompt', 'agent']).default('command'),
    name: z.string().nullable().default(null),
    command: z.string().default(''),
    prompt: z.string().nullable().default(null),
    system_prompt: z.string().nullable().default(null),
    tools: z.array(z.string()).default([]),
    timeout: z.number().int().default(60),
    max_iterations: z.number().int().default(3),
    async: z.boolean().default(false),
  })
  .superRefine((hook, ctx) => {
    const problem =
      hook.type === 'command' && !hook.command
        ? "'command' is required when type is 'command'"
        : hook.type === 'prompt' && !hook.prompt
          ? "'prompt' is required when type is 'prompt'"
          : hook.type !== 'command' && hook.command
            ? `'command' must not be set when type is '${hook.type}'`
            : hook.type !== 'command' && hook.async
              ? `'async' is not supported for ${hook.type} hooks`
              : null;
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const HookMatcherSchema = z.object({ matcher: z.string().default('*'), hooks: z.array(HookDefinitionSchema).default([]) });

const pascalToSnake = (key: string) => key.replace(/(?!^)(?=[A-Z])/g, '_').toLowerCase();

/**
 * A hook configuration as OpenHands' HookConfig reads it: the legacy `{"hooks": {...}}` wrapper
 * unwrapped, PascalCase event names (Claude Code's hook files) turned snake_case, unknown events refused.
 */
export const HookConfigSchema = z
  .preprocess(
    (data) => {
      if (data === null || typeof data !== 'object' || Array.isArray(data)) return data;
      const events = 'hooks' in data ? (data as { hooks: unknown }).hooks : data;
      if (events === null || typeof events !== 'object' || Array.isArray(events)) return events;
      const normalized: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(events)) {
        const snake = pascalToSnake(key);
        if (snake in normalized) return { [`duplicate event ${key}`]: value };
        normalized[snake] = value;
      }
      return normalized;
    },
    z.strictObject(Object.fromEntries(HOOK_EVENTS.map((event) => [event, z.array(HookMatcherSchema).default([])])) as Record<(typeof HOOK_EVENTS)[number], z.ZodDefault<z.ZodArray<typeof HookMatcherSchema>>>),
  )
  .meta({ id: 'HookConfig' });
export type HookConfig = z.output<typeof HookConfigSchema>;

/** Whether a configuration has no hook at all (OpenHands answers `null` for it). */
export function hookConfigIsEmpty(config: HookConfig): boolean {
  return HOOK_EVENTS.every((event) => config[event].length === 0);
}

export const HooksRequestSchema = z
  .looseObject({ project_dir: z.string().max(4096).nullish() })
  .meta({ id: 'HooksRequest', description: 'The workspace folder whose `.openhands/hooks.json` to read.' });

export const HooksResponseSchema = z.object({ hook_config: HookConfigSchema.nullable() }).meta({ id: 'HooksResponse' });
