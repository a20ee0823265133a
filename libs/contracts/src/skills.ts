import { z } from 'zod';

/** openhands-sdk's skill triggers: keywords in a user message, a task's `/name`, or a touched path. */
export const SkillTriggerSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('keyword'), keywords: z.array(z.string().max(200)).max(100) }),
  z.looseObject({ type: z.literal('task'), triggers: z.array(z.string().max(200)).max(100) }),
  z.looseObject({ type: z.literal('path'), paths: z.array(z.string().max(1000)).max(100) }),
]);

/** A Skill as the SDK serializes it (its defaults filled in, so a stored skill reads as the reference's). */
export const SkillSchema = z
  .looseObject({
    name: z.string().min(1).max(200),
    content: z.string().max(1_000_000),
    trigger: SkillTriggerSchema.nullable().default(null),
    source: z.string().max(4096).nullable().default(null),
    mcp_tools: z.record(z.string(), z.unknown()).nullable().default(null),
    inputs: z.array(z.record(z.string(), z.unknown())).default([]),
    is_agentskills_format: z.boolean().default(false),
    version: z.string().default('1.0.0'),
    description: z.string().nullable().default(null),
    license: z.string().nullable().default(null),
    compatibility: z.string().nullable().default(null),
    metadata: z.record(z.string(), z.string()).nullable().default(null),
    allowed_tools: z.array(z.string()).nullable().default(null),
    disable_model_invocation: z.boolean().default(false),
    resources: z.record(z.string(), z.unknown()).nullable().default(null),
  })
  .meta({ id: 'Skill' });

/** The AgentContext fields Berth acts on (others are kept as sent). */
export const AgentContextSchema = z
  .looseObject({
    skills: z
      .array(SkillSchema)
      .max(500)
      .default([])
      .superRefine((skills, ctx) => {
        const seen = new Set<string>();
        for (const s of skills) {
          if (seen.has(s.name)) ctx.addIssue({ code: 'custom', message: `Duplicate skill name found: ${s.name}` });
          seen.add(s.name);
        }
      }),
    system_message_suffix: z.string().max(100_000).nullable().default(null),
    user_message_suffix: z.string().max(100_000).nullable().default(null),
    // The reference's other switches, accepted as clients send them (Agent Canvas turns user skills on): Berth loads
    // no user, public or marketplace skills and no memory — in OpenHands they come from the server's own home and network.
    load_user_skills: z.boolean().default(false),
    load_public_skills: z.boolean().default(false),
    marketplace_path: z.string().nullable().default('marketplaces/default.json'),
    registered_marketplaces: z.array(z.unknown()).max(100).default([]),
    load_project_skills: z.boolean().default(false),
    load_memory: z.boolean().default(false),
    disabled_skills: z.array(z.string()).max(500).default([]),
    secrets: z.null().default(null),
    // When the agent was launched (the SDK's default); the prompt shows it to the minute.
    current_datetime: z
      .string()
      .max(100)
      .nullable()
      .default(() => new Date().toISOString().replace('Z', '000+00:00')),
  })
  .meta({ id: 'AgentContext' });
