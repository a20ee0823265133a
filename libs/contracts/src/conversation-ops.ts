import { z } from 'zod';
import { LLMSchema, TagsSchema } from './conversation';

/** POST /api/conversations/{id}/ask_agent (OpenHands' AskAgentRequest). */
export const AskAgentRequestSchema = z.looseObject({ question: z.string().min(1).max(100_000) }).meta({ id: 'AskAgentRequest' });
export const AskAgentResponseSchema = z.object({ response: z.string() }).meta({ id: 'AskAgentResponse' });

/** POST …/switch_llm: `{"llm": LLM}` (the reference's `Body(embed=True)`). */
export const SwitchLlmRequestSchema = z.looseObject({ llm: LLMSchema }).meta({ id: 'Body_switch_conversation_llm' });
/** POST …/switch_profile: `{"profile_name": "..."}`. */
export const SwitchProfileRequestSchema = z.looseObject({ profile_name: z.string().min(1).max(200) }).meta({ id: 'Body_switch_conversation_profile' });

const forkId = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/, 'Input should be a valid UUID');

/** POST …/fork (OpenHands' ForkConversationRequest); every field optional, an absent body too. */
export const ForkConversationRequestSchema = z
  .looseObject({
    id: forkId.nullish(),
    title: z.string().max(200).nullish(),
    tags: TagsSchema.nullish(),
    reset_metrics: z.boolean().default(true),
    from_event_id: z.string().min(1).max(200).nullish(),
  })
  .meta({ id: 'ForkConversationRequest' });
export type ForkConversationRequest = z.output<typeof ForkConversationRequestSchema>;

/**
 * Whether the fork's sandbox got the source's workspace files (Berth's addition to ConversationInfo):
 * `copied` (the folder as it was when the fork was made, not as it was at `from_event_id`),
 * `none` (the source had no sandbox yet: nothing to copy), `unsupported` (its driver cannot copy files).
 */
export const WORKSPACE_COPY_STATES = ['copied', 'none', 'unsupported'] as const;
export type WorkspaceCopyState = (typeof WORKSPACE_COPY_STATES)[number];
