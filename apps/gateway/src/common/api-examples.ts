/**
 * Examples in the OpenAPI document for the main routes: real requests and the answers Berth gave
 * them (ids and times fixed). `redocly lint` checks each one against its schema.
 */
import { LLM_DEFAULTS } from '@berth/persistence';

export const START_CONVERSATION_EXAMPLE = {
  agent: {
    kind: 'Agent',
    llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-...', base_url: 'https://api.openai.com/v1' },
    tools: [{ name: 'terminal' }, { name: 'file_editor' }, { name: 'task_tracker' }],
  },
  workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
  initial_message: { role: 'user', content: [{ type: 'text', text: 'Run the tests and fix what fails' }], run: true },
};

export const CONVERSATION_INFO_EXAMPLE = {
  id: '5f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b',
  workspace: {
    kind: 'LocalWorkspace',
    working_dir: '/workspace/project'
  },
  persistence_dir: 'workspace/conversations/5f1d2c3b4a594e6f8a7b9c0d1e2f3a4b',
  max_iterations: 500,
  stuck_detection: true,
  execution_status: 'idle',
  confirmation_policy: {
    kind: 'NeverConfirm'
  },
  security_analyzer: null,
  activated_knowledge_skills: [],
  invoked_skills: [],
  blocked_actions: {},
  blocked_messages: {},
  last_user_message_id: null,
  leaf_event_id: null,
  stats: {
    usage_to_metrics: {}
  },
  secret_registry: {
    secret_sources: {}
  },
  agent_state: {},
  hook_config: null,
  title: 'Fix the failing tests',
  metrics: null,
  created_at: '2026-08-22T04:30:00.123456Z',
  updated_at: '2026-08-22T04:30:00.123456Z',
  forked_from_conversation_id: null,
  forked_from_event_id: null,
  parent_conversation_id: null,
  sub_conversation_ids: [],
  tags: {},
  current_model_id: null,
  available_models: [],
  supports_runtime_model_switch: false,
  launched_agent_profile: null,
  agent: {
    // The stored LLM answers with every default filled in, in the SDK's key order.
    llm: { ...LLM_DEFAULTS, base_url: 'https://api.openai.com/v1', model: 'openai/gpt-4o-mini' },
    tools: [
      {
        name: 'terminal',
        params: {}
      },
      {
        name: 'file_editor',
        params: {}
      },
      {
        name: 'task_tracker',
        params: {}
      }
    ],
    mcp_config: {},
    filter_tools_regex: null,
    include_default_tools: [
      'FinishTool',
      'ThinkTool'
    ],
    agent_context: null,
    system_prompt: null,
    system_prompt_filename: 'system_prompt.j2',
    security_policy_filename: 'security_policy.j2',
    system_prompt_kwargs: {
      llm_security_analyzer: true
    },
    condenser: null,
    critic: null,
    tool_concurrency_limit: 1,
    kind: 'Agent'
  },
  client_tools: [],
  sandbox_id: null,
  runtime_info: null
};

export const CONVERSATION_PAGE_EXAMPLE = { items: [CONVERSATION_INFO_EXAMPLE], next_page_id: null };

export const SEND_MESSAGE_EXAMPLE = { role: 'user', content: [{ type: 'text', text: 'Run the tests and fix what fails' }], run: true };

export const SETTINGS_EXAMPLE = {
  agent_settings: {
    schema_version: 5,
    agent_kind: 'openhands',
    llm: {
      model: 'openai/gpt-4o-mini',
      api_key: '**********',
      base_url: null,
      auth_type: 'api_key',
      subscription_vendor: null,
      provider_connection_id: null,
      temperature: null,
      top_p: null,
      max_output_tokens: null,
      timeout: 300,
      num_retries: 5,
      stream: false
    },
    tools: null,
    mcp_config: {}
  },
  conversation_settings: {
    schema_version: 1,
    max_iterations: 500,
    confirmation_mode: false
  },
  llm_api_key_is_set: true,
  active_profile: null,
  active_agent_profile_id: null,
  misc_settings: {
    app_preferences: {
      language: 'en',
      user_consents_to_analytics: false,
      enabled_skills: [],
      disabled_skills: []
    }
  }
};

export const SETTINGS_UPDATE_EXAMPLE = {
  agent_settings_diff: { llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-...' } },
  conversation_settings_diff: { max_iterations: 200 },
};
