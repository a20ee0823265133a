import { z } from 'zod';
import { ConversationRuntimeInfoSchema, ExecutionStatusSchema } from './conversation';
import { LaunchedAgentProfileSchema } from './settings';

/** Response shapes, used for the OpenAPI document and checked against real responses in the tests. */

export const SuccessSchema = z.object({ success: z.boolean() }).meta({ id: 'Success' });

export const ErrorBodySchema = z
  .object({ detail: z.union([z.string(), z.array(z.unknown()), z.record(z.string(), z.unknown())]) })
  .meta({ id: 'ErrorBody' });

export const EventSchema = z
  .looseObject({
    id: z.string(),
    timestamp: z.string(),
    source: z.enum(['agent', 'user', 'environment', 'hook']),
    kind: z.string(),
  })
  .meta({ id: 'Event', description: 'An OpenHands event; `kind` selects the remaining fields (contract §6).' });

export const EventPageSchema = z
  .object({ items: z.array(EventSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'EventPage' });

const MetricsSchema = z.looseObject({ model_name: z.string().optional(), accumulated_cost: z.number().optional() });

export const ConversationInfoSchema = z
  .object({
    id: z.uuid(),
    agent: z.looseObject({ kind: z.string(), llm: z.looseObject({ model: z.string() }) }),
    workspace: z.looseObject({ working_dir: z.string(), kind: z.string() }),
    persistence_dir: z.string().nullable(),
    max_iterations: z.number().int(),
    stuck_detection: z.boolean(),
    execution_status: ExecutionStatusSchema,
    confirmation_policy: z.looseObject({ kind: z.string() }),
    security_analyzer: z.looseObject({ kind: z.string() }).nullable(),
    activated_knowledge_skills: z.array(z.string()),
    invoked_skills: z.array(z.string()),
    blocked_actions: z.record(z.string(), z.string()),
    blocked_messages: z.record(z.string(), z.string()),
    last_user_message_id: z.string().nullable(),
    leaf_event_id: z.string().nullable(),
    stats: z.looseObject({ usage_to_metrics: z.record(z.string(), z.unknown()) }),
    secret_registry: z.looseObject({ secret_sources: z.record(z.string(), z.unknown()) }),
    agent_state: z.record(z.string(), z.unknown()),
    hook_config: z.record(z.string(), z.unknown()).nullable(),
    title: z.string().nullable(),
    metrics: MetricsSchema.nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    forked_from_conversation_id: z.string().nullable(),
    forked_from_event_id: z.string().nullable(),
    parent_conversation_id: z.string().nullable(),
    sub_conversation_ids: z.array(z.string()),
    tags: z.record(z.string(), z.string()),
    current_model_id: z.string().nullable(),
    available_models: z.array(z.unknown()),
    supports_runtime_model_switch: z.boolean(),
    launched_agent_profile: LaunchedAgentProfileSchema.nullable(),
    client_tools: z.array(z.unknown()),
    sandbox_id: z.string().nullable().meta({ description: 'Berth: the sandbox this conversation runs in.' }),
    runtime_info: ConversationRuntimeInfoSchema.nullable().meta({ description: 'null in the answers of POST /api/conversations, as OpenHands' }),
  })
  .meta({ id: 'ConversationInfo' });

export const ConversationPageSchema = z
  .object({ items: z.array(ConversationInfoSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'ConversationPage' });

export const FinalResponseSchema = z.object({ response: z.string() }).meta({ id: 'AgentFinalResponse' });

export const StatusSchema = z.object({ status: z.string() }).meta({ id: 'Status' });

export const ServerInfoSchema = z
  .object({
    uptime: z.number(),
    idle_time: z.number(),
    title: z.string(),
    version: z.string(),
    berth_version: z.string(),
    sdk_version: z.string(),
    tools_version: z.string(),
    workspace_version: z.string(),
    build_git_sha: z.string().nullable(),
    build_git_ref: z.string().nullable(),
    python_version: z.string().nullable(),
    usable_tools: z.array(z.string()),
    runtime_idle_timeout_seconds: z.number().nullable(),
    conversation_runtime: z.enum(['local', 'docker']),
    available_conversation_runtimes: z.array(z.enum(['local', 'docker'])),
    capabilities: z.array(z.string()),
    app_backend_ingress_url: z.string().nullable(),
    max_foreground_terminal_timeout_seconds: z.number().nullable(),
    docs: z.string(),
    redoc: z.string().nullable(),
  })
  .meta({ id: 'ServerInfo' });

export const CountSchema = z.number().int().meta({ id: 'Count' });
