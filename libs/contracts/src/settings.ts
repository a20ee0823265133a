import { z } from 'zod';
import { LLMSchema, StartConversationRequestSchema, ToolSpecSchema } from './conversation';
import { parseUuid } from './ids';
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
    provider_connection_id: z.null({ error: 'Provider connections are not supported by Berth' }).default(null),
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
      .refine((v) => parseUuid(v) !== null, 'Input should be a valid UUID')
      .nullish()
      .describe('Berth has no agent profiles: only null is accepted.'),
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
export const ActivateProfileSchema = z
  .object({ name: z.string(), message: z.string(), llm_applied: z.boolean() })
  .meta({ id: 'ActivateProfileResponse' });
