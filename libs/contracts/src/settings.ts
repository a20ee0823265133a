import { z } from 'zod';
import { LLMSchema, StartConversationRequestSchema, ToolSpecSchema } from './conversation';
import { EXECUTOR_TOOL_NAMES } from './tools';

/**
 * The settings store (contract §3.9, §3.11): a tenant's agent settings (its LLM and tools), its
 * conversation defaults, the frontend's own preferences, its secrets and its named LLM profiles.
 * Names and shapes are OpenHands'; the fields are the ones Berth acts on, so a setting Berth would
 * ignore is refused (422) rather than stored and silently ignored.
 */

/** Versions of the OpenHands settings payloads this server speaks (openhands-sdk 1.43). */
export const AGENT_SETTINGS_SCHEMA_VERSION = 5;
export const CONVERSATION_SETTINGS_SCHEMA_VERSION = 1;

/** How a set secret appears in a response without X-Expose-Secrets (pydantic's SecretStr). */
export const SECRET_MASK = '**********';

// ---------------------------------------------------------------------------------------------
// Settings forms: GET /api/settings/agent-schema and /conversation-schema describe the fields below,
// derived from the same zod schemas that validate them.

export type SettingProminence = 'critical' | 'major' | 'minor';

interface SettingsSection {
  key: string;
  label: string;
}

interface SettingMeta {
  label: string;
  description: string;
  prominence: SettingProminence;
  secret?: boolean;
  depends_on?: string[];
  /** a top-level field shown in a section other than "General" */
  section?: SettingsSection;
}

const GENERAL: SettingsSection = { key: 'general', label: 'General' };
const VERIFICATION: SettingsSection = { key: 'verification', label: 'Verification' };

const settingMetas = z.registry<SettingMeta>();
const sectionMetas = z.registry<SettingsSection>();

/** A field the settings forms show. */
function setting<T extends z.ZodType>(schema: T, meta: SettingMeta): T {
  const described = schema.describe(meta.description) as T;
  settingMetas.add(described as z.ZodType, meta);
  return described;
}

/** A nested object whose fields make a section of the form of their own (`llm.model`, …). */
function section<T extends z.ZodType>(schema: T, meta: SettingsSection): T {
  sectionMetas.add(schema as z.ZodType, meta);
  return schema;
}

/** The schema under defaults, optionality and nullability. */
function bare(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
}

function valueType(schema: z.ZodType): SettingsValueType {
  const s = bare(schema);
  if (s instanceof z.ZodBoolean) return 'boolean';
  if (s instanceof z.ZodNumber) return s.isInt ? 'integer' : 'number';
  if (s instanceof z.ZodArray) return 'array';
  if (s instanceof z.ZodObject || s instanceof z.ZodRecord) return 'object';
  return 'string';
}

function defaultOf(schema: z.ZodType): unknown {
  const parsed = schema.safeParse(undefined);
  return parsed.success ? (parsed.data ?? null) : null;
}

const SETTINGS_VALUE_TYPES = ['string', 'integer', 'number', 'boolean', 'array', 'object'] as const;
type SettingsValueType = (typeof SETTINGS_VALUE_TYPES)[number];

export const SettingsFieldSchema = z.object({
  key: z.string().describe('dotted path in the settings object, e.g. `llm.model`'),
  label: z.string(),
  description: z.string().nullable(),
  section: z.string(),
  section_label: z.string(),
  value_type: z.enum(SETTINGS_VALUE_TYPES),
  default: z.unknown(),
  prominence: z.enum(['critical', 'major', 'minor']),
  depends_on: z.array(z.string()),
  secret: z.boolean(),
  choices: z.array(z.object({ value: z.union([z.string(), z.number(), z.boolean()]), label: z.string() })),
  variant: z.string().nullable(),
});

export const SettingsFormSchema = z
  .object({
    model_name: z.string(),
    sections: z.array(
      z.object({ key: z.string(), label: z.string(), fields: z.array(SettingsFieldSchema), variant: z.string().nullable() }),
    ),
  })
  .meta({ id: 'SettingsSchema', description: 'How a GUI renders a settings form: the fields, grouped in sections.' });
export type SettingsForm = z.output<typeof SettingsFormSchema>;

/**
 * The form of a settings object, as OpenHands' `export_settings_schema` builds it: top-level fields
 * go to "General" (or the section they name), nested objects marked as sections list their fields
 * as `section.field`. `variant` tags every field and every section but "General".
 */
export function settingsFormOf(modelName: string, schema: z.ZodObject, variant: string | null = null): SettingsForm {
  const sections: SettingsForm['sections'] = [];
  const sectionFor = (meta: SettingsSection) => {
    let found = sections.find((s) => s.key === meta.key);
    if (!found) {
      found = { key: meta.key, label: meta.label, fields: [], variant: meta.key === GENERAL.key ? null : variant };
      sections.push(found);
    }
    return found;
  };
  const add = (key: string, member: z.ZodType, meta: SettingMeta, target: SettingsSection) => {
    sectionFor(target).fields.push({
      key,
      label: meta.label,
      description: meta.description,
      section: target.key,
      section_label: target.label,
      value_type: valueType(member),
      default: meta.secret ? null : defaultOf(member),
      prominence: meta.prominence,
      depends_on: meta.depends_on ?? [],
      secret: meta.secret ?? false,
      choices: [],
      variant,
    });
  };
  for (const [name, member] of Object.entries(schema.shape) as [string, z.ZodType][]) {
    const nested = sectionMetas.get(member);
    if (nested) {
      for (const [inner, innerMember] of Object.entries((bare(member) as z.ZodObject).shape) as [string, z.ZodType][]) {
        const meta = settingMetas.get(innerMember);
        if (meta) add(`${name}.${inner}`, innerMember, meta, nested);
      }
      continue;
    }
    const meta = settingMetas.get(member);
    if (meta) add(name, member, meta, meta.section ?? GENERAL);
  }
  return { model_name: modelName, sections };
}

// ---------------------------------------------------------------------------------------------
// The settings objects

/** RFC 7386 JSON merge patch: objects merge key by key, null removes a key, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(patch)) return patch;
  // A Map, then fromEntries: a "__proto__" key stays a plain key.
  const merged = new Map(Object.entries(isObject(target) ? target : {}));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) merged.delete(key);
    else merged.set(key, mergePatch(merged.get(key), value));
  }
  return Object.fromEntries(merged);
}

/** As OpenHands' provider connection ids (`ProviderConnectionStore`). */
const CONNECTION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** An LLM configuration as settings and profiles keep it: the fields Berth's agent loop uses. */
export const SettingsLlmSchema = z
  .strictObject({
    model: setting(LLMSchema.shape.model, {
      label: 'Model',
      prominence: 'critical',
      description: 'LiteLLM-style model name (`openai/gpt-4o-mini`); the provider prefix is dropped when base_url is set.',
    }),
    api_key: setting(LLMSchema.shape.api_key.default(null), {
      label: 'API Key',
      prominence: 'critical',
      secret: true,
      description: 'Sent as the bearer token to the endpoint; encrypted at rest.',
    }),
    base_url: setting(LLMSchema.shape.base_url.default(null), {
      label: 'Base URL',
      prominence: 'major',
      description: 'Any OpenAI-compatible endpoint (…/v1); none = api.openai.com.',
    }),
    auth_type: z.literal('api_key', { error: 'Berth authenticates to LLMs with API keys only' }).default('api_key'),
    subscription_vendor: z.null({ error: 'Subscription sign-in is not supported by Berth' }).default(null),
    provider_connection_id: z
      .string()
      .regex(CONNECTION_ID, 'Provider connection ids are 1-128 letters, digits, ".", "_" or "-", starting with a letter or a digit')
      .nullable()
      .default(null)
      .describe('A provider connection (`/api/llm/provider-connections`) whose api_key and base_url this LLM uses.'),
    temperature: setting(LLMSchema.shape.temperature.default(null), {
      label: 'Temperature',
      prominence: 'minor',
      description: 'Sampling temperature (0-2); none = the model default.',
    }),
    top_p: setting(LLMSchema.shape.top_p.default(null), {
      label: 'Top P',
      prominence: 'minor',
      description: 'Nucleus sampling (0-1); none = the model default.',
    }),
    max_output_tokens: setting(LLMSchema.shape.max_output_tokens.default(null), {
      label: 'Max output tokens',
      prominence: 'minor',
      description: 'Cap on tokens per completion; none = the model default.',
    }),
    timeout: setting(LLMSchema.shape.timeout.default(300), { label: 'Timeout', prominence: 'minor', description: 'Seconds one LLM request may take.' }),
    num_retries: setting(LLMSchema.shape.num_retries.default(5), {
      label: 'Retries',
      prominence: 'minor',
      description: 'Retries of a failed request (rate limits, 5xx, connection errors), with backoff.',
    }),
    stream: setting(LLMSchema.shape.stream.default(false), {
      label: 'Stream',
      prominence: 'minor',
      description: 'Stream completions: text arrives on the event socket as StreamingDeltaEvents.',
    }),
  })
  .meta({ id: 'SettingsLLM' });
export type SettingsLlm = z.output<typeof SettingsLlmSchema>;

const AgentToolSchema = z.strictObject({ name: z.enum(EXECUTOR_TOOL_NAMES), params: ToolSpecSchema.shape.params });

export const AgentSettingsSchema = z
  .strictObject({
    schema_version: z.literal(AGENT_SETTINGS_SCHEMA_VERSION).default(AGENT_SETTINGS_SCHEMA_VERSION),
    agent_kind: z.literal('openhands', { error: "Berth runs the OpenHands agent only (agent_kind 'openhands')" }).default('openhands'),
    llm: section(SettingsLlmSchema.prefault({}), { key: 'llm', label: 'LLM' }),
    tools: setting(z.array(AgentToolSchema).max(EXECUTOR_TOOL_NAMES.length).nullable().default(null), {
      label: 'Tools',
      prominence: 'major',
      description: 'The sandbox tools the agent gets (terminal, file_editor, task_tracker); none = all of them.',
    }),
    mcp_config: z
      .record(z.string(), z.unknown())
      .refine((servers) => Object.keys(servers).length === 0, { error: 'MCP servers are not supported by Berth yet' })
      .default({})
      .describe('MCP servers by name: always empty, Berth runs none yet.'),
  })
  .meta({ id: 'AgentSettings' });
export type AgentSettings = z.output<typeof AgentSettingsSchema>;

export const ConversationSettingsSchema = z
  .strictObject({
    schema_version: z.literal(CONVERSATION_SETTINGS_SCHEMA_VERSION).default(CONVERSATION_SETTINGS_SCHEMA_VERSION),
    max_iterations: setting(StartConversationRequestSchema.shape.max_iterations, {
      label: 'Max iterations',
      prominence: 'major',
      description: 'Agent steps per run before the conversation stops (MaxIterationsReached).',
    }),
    confirmation_mode: setting(z.boolean().default(false), {
      label: 'Confirmation mode',
      prominence: 'critical',
      section: VERIFICATION,
      description: 'Ask before every sandbox action (AlwaysConfirm; Berth has no security analyzer to rate risks).',
    }),
  })
  .meta({ id: 'ConversationSettings' });
export type ConversationSettings = z.output<typeof ConversationSettingsSchema>;

/** Known `app_preferences` are type-checked; the rest of misc_settings is the frontend's, kept as given. */
const AppPreferencesSchema = z.looseObject({
  language: z.string().max(32).default('en'),
  user_consents_to_analytics: z
    .boolean()
    .default(false)
    .describe('Berth sends no analytics; false (not null) keeps the consent prompt away.'),
  enabled_skills: z.array(z.string().max(256)).max(1000).default([]),
  disabled_skills: z.array(z.string().max(256)).max(1000).default([]),
  enable_sound_notifications: z.boolean().optional(),
  git_user_name: z.string().max(256).nullish(),
  git_user_email: z.string().max(256).nullish(),
  title_llm_profile: z.string().max(64).nullish(),
});

export const MiscSettingsSchema = z
  .looseObject({ app_preferences: AppPreferencesSchema.prefault({}) })
  .meta({ id: 'MiscSettings', description: 'Frontend-owned preferences: stored as sent (unknown keys included), never read by Berth.' });
export type MiscSettings = z.output<typeof MiscSettingsSchema>;

export const SettingsResponseSchema = z
  .object({
    agent_settings: AgentSettingsSchema,
    conversation_settings: ConversationSettingsSchema,
    llm_api_key_is_set: z.boolean(),
    active_profile: z.string().nullable(),
    active_agent_profile_id: z.string().nullable(),
    misc_settings: MiscSettingsSchema,
  })
  .meta({
    id: 'SettingsResponse',
    description: `agent_settings.llm.api_key is "${SECRET_MASK}" when set, unless X-Expose-Secrets asks for a Fernet token (encrypted) or the key (plaintext).`,
  });
export type SettingsResponse = z.output<typeof SettingsResponseSchema>;

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const ProfileNameSchema = z
  .string()
  .regex(PROFILE_NAME, 'Profile names are 1-64 letters, digits, ".", "_" or "-", starting with a letter or a digit');

const mergePatchOf = (what: string) =>
  z
    .record(z.string(), z.unknown())
    .nullish()
    .describe(`A JSON merge patch (RFC 7386) of ${what}: objects merge, null resets a field to its default, lists are replaced.`);

export const SettingsUpdateRequestSchema = z
  .strictObject({
    agent_settings_diff: mergePatchOf('agent_settings'),
    conversation_settings_diff: mergePatchOf('conversation_settings'),
    misc_settings_diff: mergePatchOf('misc_settings'),
    active_profile: ProfileNameSchema.nullish().describe(
      'Activate this LLM profile (its LLM becomes agent_settings.llm unless the diff sets llm); null clears it.',
    ),
    active_agent_profile_id: z
      .string()
      .max(128)
      .nullish()
      .describe('Make this agent profile (by id) the active one; null clears the pointer.'),
  })
  .meta({ id: 'SettingsUpdateRequest' });
export type SettingsUpdateRequest = z.output<typeof SettingsUpdateRequestSchema>;

// ---------------------------------------------------------------------------------------------
// Secrets: /api/settings/secrets

export const SecretNameSchema = z
  .string()
  .regex(/^[a-zA-Z][a-zA-Z0-9_]{0,63}$/, 'Secret names start with a letter and have 1-64 letters, digits and underscores');
export const SecretPathSchema = z.looseObject({ name: SecretNameSchema });

export const SecretCreateRequestSchema = z
  .strictObject({ name: SecretNameSchema, value: z.string().max(65_536), description: z.string().max(1000).nullish() })
  .meta({ id: 'SecretCreateRequest' });
export type SecretCreateRequest = z.output<typeof SecretCreateRequestSchema>;

export const SecretItemSchema = z.object({ name: z.string(), description: z.string().nullable() }).meta({ id: 'SecretItemResponse' });
export type SecretItem = z.output<typeof SecretItemSchema>;

export const SecretsListSchema = z.object({ secrets: z.array(SecretItemSchema) }).meta({ id: 'SecretsListResponse' });
export const SecretDeletedSchema = z.object({ deleted: z.boolean() }).meta({ id: 'SecretDeleted' });
export const SecretValueSchema = z.string().meta({ id: 'SecretValue', description: 'The secret value itself, sent as text/plain (not JSON).' });

// ---------------------------------------------------------------------------------------------
// LLM profiles: /api/profiles

export const ProfilePathSchema = z.looseObject({ name: ProfileNameSchema });

export const SaveProfileRequestSchema = z
  .strictObject({
    llm: SettingsLlmSchema,
    include_secrets: z.boolean().default(true).describe('Keep the api_key with the profile'),
  })
  .meta({ id: 'SaveProfileRequest' });
export type SaveProfileRequest = z.output<typeof SaveProfileRequestSchema>;

export const RenameProfileRequestSchema = z.strictObject({ new_name: ProfileNameSchema }).meta({ id: 'RenameProfileRequest' });

export const ProfileInfoSchema = z
  .object({
    name: z.string(),
    model: z.string().nullable(),
    base_url: z.string().nullable(),
    provider_connection_id: z.string().nullable(),
    provider_connection_broken: z.boolean(),
    api_key_set: z.boolean(),
  })
  .meta({ id: 'ProfileInfo' });
export type ProfileInfo = z.output<typeof ProfileInfoSchema>;

export const ProfileListSchema = z
  .object({ profiles: z.array(ProfileInfoSchema), active_profile: z.string().nullable() })
  .meta({ id: 'ProfileListResponse' });
export type ProfileList = z.output<typeof ProfileListSchema>;

export const ProfileDetailSchema = z
  .object({ name: z.string(), config: SettingsLlmSchema, api_key_set: z.boolean() })
  .meta({ id: 'ProfileDetailResponse', description: 'config.api_key is null unless X-Expose-Secrets asks for it' });
export type ProfileDetail = z.output<typeof ProfileDetailSchema>;

export const ProfileMutationSchema = z.object({ name: z.string(), message: z.string() }).meta({ id: 'ProfileMutationResponse' });

export const ValidateProfileRequestSchema = z
  .strictObject({
    llm: SettingsLlmSchema,
    include_secrets: z.boolean().default(true).describe('Accepted as POST /api/profiles/{name} takes it; a pre-flight keeps nothing'),
  })
  .meta({ id: 'ValidateProfileRequest' });
export type ValidateProfileRequest = z.output<typeof ValidateProfileRequestSchema>;

export const ValidateProfileSchema = z
  .object({ valid: z.boolean(), error: z.object({ type: z.string(), message: z.string() }).nullable() })
  .meta({ id: 'ValidateProfileResponse', description: 'A rate limit or a timeout does not make a configuration invalid: valid with no error.' });
export type ValidateProfileResult = z.output<typeof ValidateProfileSchema>;
export const ActivateProfileSchema = z
  .object({ name: z.string(), message: z.string(), llm_applied: z.boolean() })
  .meta({ id: 'ActivateProfileResponse' });

// ---------------------------------------------------------------------------------------------
// Agent profiles: /api/agent-profiles (OpenHands' `AgentProfile`, openhands-sdk 1.58)

/** The AgentProfile payload version this server writes (`AGENT_PROFILE_SCHEMA_VERSION`). */
export const AGENT_PROFILE_SCHEMA_VERSION = 4;
/** As OpenHands: more agent profiles than this per tenant is refused. */
export const MAX_AGENT_PROFILES = 50;
/** The profile made from the settings when a tenant has none active (`SEED_PROFILE_NAME`). */
export const SEED_PROFILE_NAME = 'default';

/** Switches OpenHands 1.58 refuses in a current payload ("select tools instead"). */
export const RETIRED_TOOL_SWITCHES = ['enable_sub_agents', 'enable_switch_llm_tool'] as const;

const AgentProfileToolSchema = z.strictObject({
  name: z.string().min(1).max(128),
  params: z.record(z.string(), z.unknown()).default({}),
});

const CondenserSchema = z.strictObject({
  condenser_kind: z.enum(['llm_summarizing', 'no_op']).default('llm_summarizing'),
  enabled: z.boolean().default(true),
  max_size: z.number().int().min(1).default(240),
  max_tokens: z.number().int().positive().nullable().default(null),
  keep_first: z.number().int().min(0).default(2),
  minimum_progress: z.number().min(0).max(1).default(0.1),
  hard_context_reset_max_retries: z.number().int().min(0).default(5),
  hard_context_reset_context_scaling: z.number().min(0).max(1).default(0.8),
});

const ProfileVerificationSchema = z.strictObject({
  critic_enabled: z.literal(false, { error: 'Berth has no critic: critic_enabled must be false' }).default(false),
  critic_mode: z.enum(['finish_and_message', 'all_actions']).default('finish_and_message'),
  enable_iterative_refinement: z.literal(false, { error: 'Berth has no critic to refine against: enable_iterative_refinement must be false' }).default(false),
  critic_threshold: z.number().min(0).max(1).default(0.6),
  max_refinement_iterations: z.number().int().min(1).default(3),
  critic_server_url: z.string().nullable().default(null),
  critic_model_name: z.string().nullable().default(null),
});

/**
 * An OpenHands agent profile as Berth keeps it: the reference's fields, references instead of
 * secrets (`llm_profile_ref` names an LLM profile, which holds the key). Fields Berth would not act
 * on take only their default (422 otherwise), as the settings do; ACP profiles are refused.
 */
export const AgentProfileSchema = z
  .strictObject({
    schema_version: z.number().int().min(1).max(AGENT_PROFILE_SCHEMA_VERSION).default(AGENT_PROFILE_SCHEMA_VERSION),
    agent_kind: z.literal('openhands', { error: "Berth runs the OpenHands agent only (agent_kind 'openhands')" }).default('openhands'),
    id: z.string().optional().describe('Server-managed: kept on overwrite, minted on create; a sent id is ignored.'),
    name: z.string().min(1),
    revision: z.number().int().min(0).optional().describe('Server-managed: bumped on every save.'),
    mcp_server_refs: z.array(z.string()).nullable().default(null).describe('null = all MCP servers (Berth has none); a listed name cannot resolve.'),
    secret_refs: z.array(z.string()).nullable().default(null).describe("Which of a conversation's secrets the agent gets: null = all."),
    llm_profile_ref: z.string().min(1).describe('Name of the LLM profile (/api/profiles) this agent runs with.'),
    agent: z.literal('CodeActAgent', { error: 'Berth builds the CodeActAgent only' }).default('CodeActAgent'),
    tools: z.array(AgentProfileToolSchema).max(64).nullable().default(null).describe('null = every sandbox tool.'),
    persona: z.null({ error: 'Berth keeps its own system prompt: persona must be null' }).default(null),
    system_message_suffix: z.string().max(65536).nullable().default(null),
    disabled_skills: z.array(z.string().max(256)).max(1000).default([]),
    public_skills: z.array(z.string().max(256)).max(1000).nullable().default(null),
    condenser: CondenserSchema.prefault({}),
    verification: ProfileVerificationSchema.prefault({}),
    enable_classify_and_switch_llm_tool: z.literal(false, { error: 'Berth has no LLM routing tool' }).default(false),
    meta_profile_ref: z.string().min(1).nullable().default(null),
    tool_concurrency_limit: z.literal(1, { error: 'Berth runs one tool call at a time' }).default(1),
  })
  .meta({ id: 'OpenHandsAgentProfile' });
export type AgentProfileInput = z.output<typeof AgentProfileSchema>;
/** A stored agent profile: the server-managed identity filled in. */
export type AgentProfile = Omit<AgentProfileInput, 'id' | 'revision'> & { id: string; revision: number };

/**
 * A raw payload brought to the current version as OpenHands' migrations do: v1 loses `skills`, the
 * retired tool switches (v2-v3) are dropped. Null for what no migration can read (a schema_version
 * that is not an integer or newer than this server's), which OpenHands answers "Invalid agent profile".
 */
export function migrateAgentProfilePayload(payload: Record<string, unknown>): Record<string, unknown> | null {
  const version = payload.schema_version ?? AGENT_PROFILE_SCHEMA_VERSION;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0 || version > AGENT_PROFILE_SCHEMA_VERSION) return null;
  if (version === AGENT_PROFILE_SCHEMA_VERSION) return { ...payload, schema_version: version };
  const migrated = new Map(Object.entries(payload));
  migrated.delete('skills');
  for (const key of RETIRED_TOOL_SWITCHES) migrated.delete(key);
  migrated.set('schema_version', AGENT_PROFILE_SCHEMA_VERSION);
  return Object.fromEntries(migrated);
}

export const AgentProfilePathSchema = z.looseObject({ name: ProfileNameSchema });
export const AgentProfileIdPathSchema = z.looseObject({ profile_id: z.string().min(1).max(128) });

export const AgentProfileInfoSchema = z
  .object({
    id: z.string().nullable(),
    name: z.string(),
    agent_kind: z.string(),
    revision: z.number().int().nullable(),
    llm_profile_ref: z.string().nullable(),
    mcp_server_refs: z.array(z.string()).nullable(),
  })
  .meta({ id: 'AgentProfileInfo' });
export type AgentProfileInfo = z.output<typeof AgentProfileInfoSchema>;

export const AgentProfileListSchema = z
  .object({ profiles: z.array(AgentProfileInfoSchema), active_agent_profile_id: z.string().nullable() })
  .meta({ id: 'AgentProfileListResponse' });
export type AgentProfileList = z.output<typeof AgentProfileListSchema>;

export const AgentProfileDetailSchema = z
  .object({ name: z.string(), profile: z.record(z.string(), z.unknown()) })
  .meta({ id: 'AgentProfileDetailResponse', description: 'An agent profile holds no secret, so nothing is masked.' });
export const AgentProfileMutationSchema = z.object({ name: z.string(), message: z.string() }).meta({ id: 'AgentProfileMutationResponse' });
export const ActivateAgentProfileSchema = z
  .object({ id: z.string(), message: z.string(), agent_settings_applied: z.boolean() })
  .meta({ id: 'ActivateAgentProfileResponse', description: 'agent_settings_applied is always false: activation moves the pointer only.' });
export const RenameAgentProfileRequestSchema = z.strictObject({ new_name: ProfileNameSchema }).meta({ id: 'RenameAgentProfileRequest' });

export const MaterializeAgentProfileRequestSchema = z
  .strictObject({
    profile: z
      .custom<Record<string, unknown> | null>((v) => v === null || (typeof v === 'object' && !Array.isArray(v)), 'Value error, profile must be an object')
      .optional()
      .transform((v) => v ?? null)
      .describe("A draft to preview instead of the stored profile; the path name overrides the draft's name."),
  })
  .meta({ id: 'MaterializeAgentProfileRequest' });

export const AgentProfileDiagnosticsSchema = z
  .object({
    agent_kind: z.string(),
    valid: z.boolean(),
    errors: z.array(z.string()),
    unusable_tools: z.array(z.string()),
    llm_profile_ref: z.string().nullable(),
    llm_profile_resolved: z.boolean(),
    llm_api_key_set: z.boolean(),
    mcp_server_refs: z.array(z.string()).nullable(),
    resolved_mcp_config_keys: z.array(z.string()),
    dangling_mcp_server_refs: z.array(z.string()),
    disabled_skills: z.array(z.string()),
    public_skills: z.array(z.string()).nullable(),
    resolved_skills: z.array(z.string()),
    secret_refs: z.array(z.string()).nullable(),
    acp_api_key_secret_name: z.string().nullable(),
    acp_base_url_secret_name: z.string().nullable(),
    acp_file_secret_names: z.array(z.string()),
    meta_profile_ref: z.string().nullable(),
    dangling_meta_profile_ref: z.string().nullable(),
    dangling_meta_profile_llm_refs: z.array(z.string()),
    resolved_settings: z.record(z.string(), z.unknown()).nullable(),
  })
  .meta({ id: 'AgentProfileDiagnostics', description: 'What launching the profile would build; resolved_settings (secrets masked) only when valid.' });
export type AgentProfileDiagnostics = z.output<typeof AgentProfileDiagnosticsSchema>;

/** What a conversation records of the agent profile that launched it (`LaunchedAgentProfile`). */
export const LaunchedAgentProfileSchema = z
  .object({
    agent_profile_id: z.string(),
    revision: z.number().int(),
    secret_refs: z.array(z.string()).nullable(),
    llm_profile_ref: z.string().nullable(),
  })
  .meta({ id: 'LaunchedAgentProfile' });
export type LaunchedAgentProfile = z.output<typeof LaunchedAgentProfileSchema>;

// ---------------------------------------------------------------------------------------------
// LLM provider connections: /api/llm/provider-connections

/** As OpenHands (`MAX_PROVIDER_CONNECTIONS`). */
export const MAX_PROVIDER_CONNECTIONS = 64;

/** A key that is blank or the mask would store no key (or wipe the shared one): refused, never echoed. */
const UsableApiKeySchema = z
  .string()
  .min(1)
  .max(65_536)
  .refine((v) => v.trim() !== '' && v !== SECRET_MASK, 'Value error, api_key must be a real key, not blank or redacted');

export const ProviderConnectionCreateRequestSchema = z
  .strictObject({
    display_name: z.string().min(1).max(128),
    provider: z.string().min(1).max(128).default('custom'),
    api_key: UsableApiKeySchema,
    base_url: z.string().max(2048).nullable().default(null),
  })
  .meta({ id: 'ProviderConnectionCreateRequest' });
export type ProviderConnectionCreateRequest = z.output<typeof ProviderConnectionCreateRequestSchema>;

export const ProviderConnectionUpdateRequestSchema = z
  .strictObject({
    display_name: z.string().min(1).max(128).nullable().optional(),
    provider: z.string().min(1).max(128).nullable().optional(),
    api_key: UsableApiKeySchema.nullable().optional(),
    base_url: z.string().max(2048).nullable().optional(),
  })
  .superRefine((req, ctx) => {
    // As OpenHands: only base_url may be cleared; the others are required on a stored connection.
    for (const field of ['display_name', 'provider'] as const) {
      if (req[field] === null) ctx.addIssue({ code: 'custom', path: [], message: `Value error, ${field} cannot be set to null` });
    }
  })
  .meta({ id: 'ProviderConnectionUpdateRequest', description: 'Only the fields sent change; base_url null clears it; api_key cannot be cleared.' });
export type ProviderConnectionUpdateRequest = z.output<typeof ProviderConnectionUpdateRequestSchema>;

export const ProviderConnectionPathSchema = z.looseObject({ connection_id: z.string().max(1024) });

export const ProviderConnectionSchema = z
  .object({
    id: z.string(),
    display_name: z.string(),
    provider: z.string(),
    base_url: z.string().nullable(),
    created_at: z.number().int().describe('Unix epoch seconds'),
    updated_at: z.number().int().describe('Unix epoch seconds'),
    api_key_set: z.boolean(),
  })
  .meta({ id: 'ProviderConnectionResponse', description: 'The api_key is never shown; api_key_set says whether there is one.' });
export type ProviderConnectionView = z.output<typeof ProviderConnectionSchema>;

// ---------------------------------------------------------------------------------------------
// GET /api/llm/balance (Agent Canvas' provider balance card)

export const LlmBalanceSchema = z
  .object({
    provider: z.string().nullable(),
    limit: z.number().nullable(),
    limit_remaining: z.number().nullable(),
    usage: z.number().nullable(),
    usage_daily: z.number().nullable(),
    usage_weekly: z.number().nullable(),
    usage_monthly: z.number().nullable(),
    is_free_tier: z.boolean(),
  })
  .meta({ id: 'LLMBalance', description: 'provider null: no balance is known (Berth asks no provider); clients show none.' });
