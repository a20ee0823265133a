import { Injectable } from '@nestjs/common';
import { AgentProfile, AgentProfileSchema } from '@berth/contracts';
import { AgentProfileRow, Prisma, SettingsRepository } from '@berth/persistence';
import type { Principal } from '../common/tenant.decorator';

/**
 * Agent profiles as rows: the body is stored validated, without its server-managed identity (id,
 * name, revision live in columns). Shared by the agent-profile routes and the LLM profiles, whose
 * names agent profiles reference (OpenHands' profile_refs foreign key).
 */
@Injectable()
export class AgentProfileStore {
  /** The profile as OpenHands dumps it: identity fields in its order, then the body. */
  profileOf(row: AgentProfileRow): AgentProfile {
    const body = AgentProfileSchema.parse({ ...(row.profile as Record<string, unknown>), name: row.name });
    const { schema_version, agent_kind, name: _name, id: _id, revision: _revision, ...rest } = body;
    return { schema_version, agent_kind, id: row.id, name: row.name, revision: row.revision, ...rest } as AgentProfile;
  }

  /** What a row stores of a validated profile. */
  bodyOf(profile: Omit<AgentProfile, 'id' | 'revision'> | AgentProfile): Prisma.InputJsonValue {
    const body: Record<string, unknown> = { ...profile };
    delete body.id;
    delete body.name;
    delete body.revision;
    return body as Prisma.InputJsonValue;
  }

  /** Names of the agent profiles whose llm_profile_ref is `llmProfile`. */
  async referrers(rows: SettingsRepository, p: Principal, llmProfile: string): Promise<string[]> {
    return (await rows.listAgentProfiles(p)).filter((r) => (r.profile as { llm_profile_ref?: unknown }).llm_profile_ref === llmProfile).map((r) => r.name);
  }

  /** Points every llm_profile_ref from `from` to `to` (no new revision: the profile itself did not change). */
  async cascadeLlmRename(rows: SettingsRepository, p: Principal, from: string, to: string): Promise<void> {
    for (const row of await rows.listAgentProfiles(p)) {
      const body = row.profile as Record<string, unknown>;
      if (body.llm_profile_ref === from) await rows.rewriteAgentProfile(p, row.name, { ...body, llm_profile_ref: to } as Prisma.InputJsonValue);
    }
  }
}
