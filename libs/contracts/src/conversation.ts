import { z } from 'zod';
import { EXECUTION_STATUSES } from './execution-status';
import { AgentContextSchema } from './skills';
import { McpConfigSchema } from './mcp';

export const ExecutionStatusSchema = z.enum(EXECUTION_STATUSES);

/** Fields of an LLM config that hold secrets: encrypted at rest, null in every response. */
export const LLM_SECRET_FIELDS = ['api_key', 'aws_access_key_id', 'aws_secret_access_key', 'aws_session_token'] as const;

export const TextContentSchema = z.strictObject({
  type: z.literal('text'),
  text: z.string(),
  cache_prompt: z.boolean().optional(),
});
export const ImageContentSchema = z.strictObject({
  type: z.literal('image'),
  image_urls: z.array(z.string()),
  cache_prompt: z.boolean().optional(),
});
export const ContentSchema = z.discriminatedUnion('type', [TextContentSchema, ImageContentSchema]);

export const SendMessageRequestSchema = z
  .strictObject({
    role: z.enum(['user', 'system', 'assistant', 'tool']).default('user'),
    content: z.array(ContentSchema).max(1000).default([]),
    run: z.boolean().default(false),
    sender: z.string().max(200).nullish(),
  })
  .refine((m) => m.role === 'user', { message: 'Only user messages can be sent to a conversation', path: ['role'] })
  .meta({ id: 'SendMessageRequest' });
export type SendMessageRequest = z.output<typeof SendMessageRequestSchema>;

export const LLMSchema = z
  .looseObject({
    model: z.string().min(1).default('gpt-5.5'),
    api_key: z.string().nullish(),
    base_url: z.string().nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().min(0).max(1).nullish(),
    max_output_tokens: z.number().int().positive().nullish(),
    timeout: z.number().int().min(0).nullish(),
    num_retries: z.number().int().min(0).max(100).nullish(),
    usage_id: z.string().nullish(),
    stream: z.boolean().nullish(),
  })
  .meta({ id: 'LLM' });

/**
 * The agent's `condenser`, as the SDK's discriminated union names them. The SDK's validator refuses
 * a `keep_first` that leaves no room to condense (max_size // 2 - keep_first - 1 must stay positive).
 */
export const CondenserSchema = z
  .discriminatedUnion('kind', [
    z.looseObject({ kind: z.literal('NoOpCondenser') }),
    z
      .looseObject({
        kind: z.literal('LLMSummarizingCondenser'),
        llm: LLMSchema,
        max_size: z.number().int().positive().default(240),
        max_tokens: z.number().int().positive().nullish(),
        keep_first: z.number().int().min(0).default(2),
        minimum_progress: z.number().gt(0).lt(1).default(0.1),
        hard_context_reset_max_retries: z.number().int().positive().default(5),
        hard_context_reset_context_scaling: z.number().gt(0).lt(1).default(0.8),
      })
      .refine((c) => Math.floor(c.max_size / 2) - c.keep_first - 1 > 0, {
        message: 'keep_first must be less than max_size // 2 to leave room for condensation',
        path: ['keep_first'],
      }),
  ])
  .meta({ id: 'Condenser' });
export type CondenserSpec = z.output<typeof CondenserSchema>;

export const ToolSpecSchema = z.looseObject({ name: z.string().min(1), params: z.record(z.string(), z.unknown()).default({}) });

export const AgentSchema = z
  .looseObject({
    kind: z.literal('Agent').default('Agent'),
    llm: LLMSchema,
    tools: z.array(ToolSpecSchema).default([]),
    agent_context: AgentContextSchema.nullish(),
    mcp_config: McpConfigSchema.optional(),
    condenser: CondenserSchema.nullish(),
  })
  .meta({ id: 'Agent' });

export const ConfirmationPolicySchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('NeverConfirm') }),
    z.strictObject({ kind: z.literal('AlwaysConfirm') }),
    z.strictObject({
      kind: z.literal('ConfirmRisky'),
      threshold: z.enum(['LOW', 'MEDIUM', 'HIGH']).default('HIGH'),
      confirm_unknown: z.boolean().default(true),
    }),
  ])
  .meta({ id: 'ConfirmationPolicy' });

/**
 * The security analyzers Berth runs: `LLMSecurityAnalyzer` (the LLM's own `security_risk`). The
 * reference's others call outside services (Gray Swan, ToolShield) Berth does not reach.
 */
export const SecurityAnalyzerSchema = z
  .strictObject({ kind: z.literal('LLMSecurityAnalyzer', { error: 'Berth runs only the LLMSecurityAnalyzer security analyzer' }) })
  .meta({ id: 'SecurityAnalyzer' });

export const SecretSourceSchema = z.union([
  z.string(),
  z.strictObject({ value: z.string(), description: z.string().nullish() }),
  z.strictObject({ kind: z.literal('StaticSecret'), value: z.string().nullable(), description: z.string().nullish() }),
  z.strictObject({
    kind: z.literal('LookupSecret'),
    url: z.string().url(),
    headers: z.record(z.string(), z.string()).default({}),
    description: z.string().nullish(),
  }),
]);
export const SecretsSchema = z.record(z.string().min(1).max(200), SecretSourceSchema);

const uuidLike = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/, 'Input should be a valid UUID');

export const TagsSchema = z.record(
  z.string().regex(/^[a-z0-9]+$/, 'Tag keys must be lowercase letters and digits').max(64),
  z.string().max(256),
);

export const ClientToolSpecSchema = z.looseObject({
  name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'Tool names are 1-64 letters, digits, _ or -'),
  description: z.string().default(''),
  parameters: z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} }),
  annotations: z.record(z.string(), z.unknown()).nullish(),
});

export const WorkspaceSchema = z.looseObject({
  kind: z.literal('LocalWorkspace').default('LocalWorkspace'),
  working_dir: z.string().min(1).max(4096),
});

/**
 * OpenHands' observability fields take null for "not given" (the Python SDK sends it), as their
 * defaults. Nullish before the fallback, so the OpenAPI document shows them optional.
 */
const nullAs = <T extends z.ZodType>(fallback: z.output<T>, schema: T) => schema.nullish().transform((v) => v ?? fallback);
const observabilityScalar = z.union([z.string(), z.boolean(), z.number()]);
const ObservabilityMetadataSchema = nullAs(
  {},
  z.record(
    z.string().min(1),
    z.union([
      observabilityScalar,
      z.array(z.string()),
      z.array(z.boolean()),
      z.array(z.number().int()),
      z.array(z.number()),
    ]),
  ),
);
const ObservabilityTagsSchema = nullAs([], z.array(z.string().min(1)).max(64));
const ObservabilitySpanNameSchema = nullAs(
  'conversation',
  z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:/-]+$/, 'Observability span name may only contain letters, numbers, dots, underscores, colons, slashes, and hyphens'),
);

export const StartConversationRequestSchema = z
  .looseObject({
    agent: AgentSchema.optional(),
    agent_settings: z.record(z.string(), z.unknown()).optional(),
    agent_profile_id: uuidLike.optional(),
    workspace: WorkspaceSchema,
    sandbox_id: uuidLike.nullish().describe('Berth: run in this existing sandbox instead of a new one'),
    worktree: z.boolean().default(false),
    conversation_runtime: z.enum(['local'], { error: 'This server only runs local conversations' }).nullish(),
    conversation_id: uuidLike.nullish(),
    parent_conversation_id: uuidLike.nullish(),
    confirmation_policy: ConfirmationPolicySchema.default({ kind: 'NeverConfirm' }),
    security_analyzer: SecurityAnalyzerSchema.nullish(),
    initial_message: SendMessageRequestSchema.nullish(),
    max_iterations: z.number().int().min(1).max(100_000).default(500),
    stuck_detection: z.boolean().default(true),
    secrets: SecretsSchema.default({}),
    secrets_encrypted: z.boolean().default(false),
    tool_module_qualnames: z.record(z.string(), z.string()).default({}),
    client_tools: z.array(ClientToolSpecSchema).max(128).default([]),
    agent_launch_additions: z.looseObject({ system_message_suffix_append: z.string().max(32768).optional() }).nullish(),
    agent_definitions: z.array(z.unknown()).default([]),
    plugins: z.array(z.unknown()).nullish(),
    hook_config: z.record(z.string(), z.unknown()).nullish(),
    tags: TagsSchema.default({}),
    user_id: z.string().nullish(),
    observability_metadata: ObservabilityMetadataSchema,
    observability_tags: ObservabilityTagsSchema,
    observability_span_name: ObservabilitySpanNameSchema,
    observability_parent_span_context: z.string().max(4096).nullish(),
    autotitle: z.boolean().default(true),
    title_llm_profile: z.string().nullish(),
    prompt: z.string().max(2000).nullish().describe('A template replacing the title prompt: {conversation_content} and {max_length} are filled in'),
  })
  .superRefine((req, ctx) => {
    const given = [req.agent, req.agent_settings, req.agent_profile_id].filter((v) => v !== undefined).length;
    if (given !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'One of `agent`, `agent_settings`, or `agent_profile_id` must be provided',
      });
    }
  })
  .meta({ id: 'StartConversationRequest' });
export type StartConversationRequest = z.output<typeof StartConversationRequestSchema>;

export const UpdateConversationRequestSchema = z
  .looseObject({
    title: z.string().trim().min(1).max(200).optional(),
    tags: TagsSchema.optional(),
  })
  .meta({ id: 'UpdateConversationRequest' });

export const SetSecretsRequestSchema = z.looseObject({ secrets: SecretsSchema }).meta({ id: 'UpdateSecretsRequest' });
export const SetConfirmationPolicyRequestSchema = z
  .looseObject({ policy: ConfirmationPolicySchema })
  .meta({ id: 'SetConfirmationPolicyRequest' });
export const SetSecurityAnalyzerRequestSchema = z
  .looseObject({ security_analyzer: SecurityAnalyzerSchema.nullable() })
  .meta({ id: 'SetSecurityAnalyzerRequest' });
export const ConfirmationResponseRequestSchema = z
  .looseObject({ accept: z.boolean(), reason: z.string().max(10_000).default('User rejected the action.') })
  .meta({ id: 'ConfirmationResponseRequest' });

const limitSchema = z.coerce.number().int().min(1).max(100).default(100);
const boolQuery = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

export const ConversationSearchQuerySchema = z.looseObject({
  page_id: z.string().max(64).optional(),
  limit: limitSchema,
  status: ExecutionStatusSchema.optional(),
  sort_order: z.enum(['CREATED_AT', 'UPDATED_AT', 'CREATED_AT_DESC', 'UPDATED_AT_DESC']).default('CREATED_AT_DESC'),
  include_skills: boolQuery.optional(),
});
export type ConversationSearchQuery = z.output<typeof ConversationSearchQuerySchema>;

export const ConversationCountQuerySchema = z.looseObject({ status: ExecutionStatusSchema.optional() });

export const ConversationBatchQuerySchema = z.looseObject({
  ids: z.preprocess((v) => (v === undefined ? v : Array.isArray(v) ? v : [v]), z.array(uuidLike).min(1).max(100)),
  include_skills: boolQuery.optional(),
});

export const IncludeSkillsQuerySchema = z.looseObject({ include_skills: boolQuery.optional() });

export const EventSearchQuerySchema = z.looseObject({
  page_id: z.string().max(200).optional(),
  limit: limitSchema,
  kind: z.string().max(300).optional(),
  source: z.enum(['agent', 'user', 'environment', 'hook']).optional(),
  body: z.string().max(1000).optional(),
  sort_order: z.enum(['TIMESTAMP', 'TIMESTAMP_DESC']).default('TIMESTAMP'),
  timestamp__gte: z.string().max(64).optional(),
  timestamp__lt: z.string().max(64).optional(),
});
export type EventSearchQuery = z.output<typeof EventSearchQuerySchema>;

export const EventIdsBodySchema = z.array(z.string().max(200)).max(100).meta({ id: 'EventIds' });

/** OpenHands' ConversationRuntimeStatus: whether the runtime that executes the conversation is there. */
export const CONVERSATION_RUNTIME_STATUSES = ['available', 'starting', 'missing', 'ownership_lost', 'error'] as const;

/**
 * OpenHands' ConversationRuntimeInfo (`runtime_info` of conversation rows, GET …/runtime), filled
 * from the conversation's sandbox, with Berth's fields naming that sandbox.
 */
export const ConversationRuntimeInfoSchema = z
  .object({
    runtime_status: z.enum(CONVERSATION_RUNTIME_STATUSES),
    can_resume: z.boolean(),
    runtime_error: z.object({ code: z.string(), message: z.string() }).nullable(),
    sandbox_id: z.string().nullable().meta({ description: 'Berth: the sandbox the conversation runs in (null until its first use)' }),
    sandbox_kind: z.enum(['home', 'conversation', 'standalone']).nullable().meta({ description: "Berth: `conversation` (its own), or shared: the tenant's `home` or a `standalone` one it joined" }),
    sandbox_status: z.string().nullable().meta({ description: 'Berth: the sandbox status (starting, running, paused, stopped, error, lost)' }),
    driver: z.string().meta({ description: 'Berth: the sandbox driver (local)' }),
  })
  .meta({ id: 'ConversationRuntimeInfo' });
export type ConversationRuntimeInfo = z.output<typeof ConversationRuntimeInfoSchema>;
