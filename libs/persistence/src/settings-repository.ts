import { Database, TRANSACTION_OPTIONS } from './database';
import { Prisma } from './generated/prisma/client';
import type {
  AgentProfile as AgentProfileRow,
  LlmProfile as LlmProfileRow,
  ProviderConnection as ProviderConnectionRow,
  TenantSettings as TenantSettingsRow,
} from './generated/prisma/client';
import type { TenantScope } from './tenant-scope';

export type SettingsChange = Pick<Prisma.TenantSettingsUpdateInput, 'agentSettings' | 'conversationSettings' | 'miscSettings' | 'activeProfile' | 'activeAgentProfileId'>;

export type { AgentProfileRow, ProviderConnectionRow };
export type ProviderConnectionChange = Pick<Prisma.ProviderConnectionUpdateInput, 'displayName' | 'provider' | 'apiKey' | 'baseUrl'>;

/**
 * A tenant's settings row, secrets store, LLM profiles, agent profiles and provider connections; every method takes the tenant. Work that
 * must be all or nothing runs in `transaction`, which hands out a repository bound to it.
 */
export class SettingsRepository {
  constructor(
    private readonly db: Database,
    private readonly client: Prisma.TransactionClient = db.prisma,
  ) {}

  transaction<T>(work: (tx: SettingsRepository) => Promise<T>): Promise<T> {
    return this.db.prisma.$transaction((tx) => work(new SettingsRepository(this.db, tx)), TRANSACTION_OPTIONS);
  }

  /** The stored settings, or null when the tenant never saved any. */
  settings(scope: TenantScope): Promise<TenantSettingsRow | null> {
    return this.client.tenantSettings.findUnique({ where: { tenantId: scope.tenantId } });
  }

  /** As `settings`, the row made if missing and locked until the transaction ends: concurrent changes take turns. */
  async lockSettings(scope: TenantScope): Promise<TenantSettingsRow> {
    await this.client.$executeRaw`INSERT INTO "tenant_settings" ("tenant_id") VALUES (${scope.tenantId}::uuid) ON CONFLICT DO NOTHING`;
    await this.client.$queryRaw`SELECT 1 FROM "tenant_settings" WHERE "tenant_id" = ${scope.tenantId}::uuid FOR UPDATE`;
    return this.client.tenantSettings.findUniqueOrThrow({ where: { tenantId: scope.tenantId } });
  }

  async updateSettings(scope: TenantScope, change: SettingsChange): Promise<void> {
    await this.client.tenantSettings.update({ where: { tenantId: scope.tenantId }, data: { ...change, updatedAt: new Date() } });
  }

  listSecrets(scope: TenantScope): Promise<{ name: string; description: string | null }[]> {
    return this.client.tenantSecret.findMany({ where: { tenantId: scope.tenantId }, orderBy: { name: 'asc' }, select: { name: true, description: true } });
  }

  /** The sealed value, or null when the tenant has no secret of that name. */
  async secretValue(scope: TenantScope, name: string): Promise<string | null> {
    const row = await this.client.tenantSecret.findUnique({ where: { tenantId_name: { tenantId: scope.tenantId, name } }, select: { value: true } });
    return row?.value ?? null;
  }

  async putSecret(scope: TenantScope, name: string, sealedValue: string, description: string | null): Promise<void> {
    const data = { value: sealedValue, description };
    await this.client.tenantSecret.upsert({
      where: { tenantId_name: { tenantId: scope.tenantId, name } },
      create: { tenantId: scope.tenantId, name, ...data },
      update: { ...data, updatedAt: new Date() },
    });
  }

  async removeSecret(scope: TenantScope, name: string): Promise<boolean> {
    const { count } = await this.client.tenantSecret.deleteMany({ where: { tenantId: scope.tenantId, name } });
    return count > 0;
  }

  listProfiles(scope: TenantScope): Promise<LlmProfileRow[]> {
    return this.client.llmProfile.findMany({ where: { tenantId: scope.tenantId }, orderBy: { name: 'asc' } });
  }

  profile(scope: TenantScope, name: string): Promise<LlmProfileRow | null> {
    return this.client.llmProfile.findUnique({ where: { tenantId_name: { tenantId: scope.tenantId, name } } });
  }

  countProfiles(scope: TenantScope): Promise<number> {
    return this.client.llmProfile.count({ where: { tenantId: scope.tenantId } });
  }

  async putProfile(scope: TenantScope, name: string, llm: Prisma.InputJsonValue): Promise<void> {
    await this.client.llmProfile.upsert({
      where: { tenantId_name: { tenantId: scope.tenantId, name } },
      create: { tenantId: scope.tenantId, name, llm },
      update: { llm, updatedAt: new Date() },
    });
  }

  /** Deletes the profile (idempotent); it stops being the active one. Call within a transaction. */
  async removeProfile(scope: TenantScope, name: string): Promise<void> {
    await this.client.llmProfile.deleteMany({ where: { tenantId: scope.tenantId, name } });
    await this.client.tenantSettings.updateMany({ where: { tenantId: scope.tenantId, activeProfile: name }, data: { activeProfile: null } });
  }

  /** Renames the profile; the active pointer follows. Call within a transaction. */
  async renameProfile(scope: TenantScope, name: string, newName: string): Promise<void> {
    await this.client.llmProfile.update({ where: { tenantId_name: { tenantId: scope.tenantId, name } }, data: { name: newName, updatedAt: new Date() } });
    await this.client.tenantSettings.updateMany({ where: { tenantId: scope.tenantId, activeProfile: name }, data: { activeProfile: newName } });
  }

  listAgentProfiles(scope: TenantScope): Promise<AgentProfileRow[]> {
    return this.client.agentProfile.findMany({ where: { tenantId: scope.tenantId }, orderBy: { name: 'asc' } });
  }

  agentProfile(scope: TenantScope, name: string): Promise<AgentProfileRow | null> {
    return this.client.agentProfile.findUnique({ where: { tenantId_name: { tenantId: scope.tenantId, name } } });
  }

  agentProfileById(scope: TenantScope, id: string): Promise<AgentProfileRow | null> {
    return this.client.agentProfile.findFirst({ where: { tenantId: scope.tenantId, id } });
  }

  countAgentProfiles(scope: TenantScope): Promise<number> {
    return this.client.agentProfile.count({ where: { tenantId: scope.tenantId } });
  }

  async createAgentProfile(scope: TenantScope, row: { id: string; name: string; profile: Prisma.InputJsonValue }): Promise<void> {
    await this.client.agentProfile.create({ data: { ...row, tenantId: scope.tenantId, revision: 0 } });
  }

  /** Replaces a profile's body; the revision goes up by one. */
  async replaceAgentProfile(scope: TenantScope, name: string, profile: Prisma.InputJsonValue): Promise<void> {
    await this.client.agentProfile.update({
      where: { tenantId_name: { tenantId: scope.tenantId, name } },
      data: { profile, revision: { increment: 1 }, updatedAt: new Date() },
    });
  }

  /** Rewrites a profile's body as is (a cascaded reference): no new revision. */
  async rewriteAgentProfile(scope: TenantScope, name: string, profile: Prisma.InputJsonValue): Promise<void> {
    await this.client.agentProfile.update({ where: { tenantId_name: { tenantId: scope.tenantId, name } }, data: { profile, updatedAt: new Date() } });
  }

  async removeAgentProfile(scope: TenantScope, name: string): Promise<void> {
    await this.client.agentProfile.deleteMany({ where: { tenantId: scope.tenantId, name } });
  }

  async renameAgentProfile(scope: TenantScope, name: string, newName: string): Promise<void> {
    await this.client.agentProfile.update({ where: { tenantId_name: { tenantId: scope.tenantId, name } }, data: { name: newName, updatedAt: new Date() } });
  }

  listConnections(scope: TenantScope): Promise<ProviderConnectionRow[]> {
    return this.client.providerConnection.findMany({ where: { tenantId: scope.tenantId }, orderBy: { createdAt: 'asc' } });
  }

  connection(scope: TenantScope, id: string): Promise<ProviderConnectionRow | null> {
    return this.client.providerConnection.findUnique({ where: { tenantId_id: { tenantId: scope.tenantId, id } } });
  }

  countConnections(scope: TenantScope): Promise<number> {
    return this.client.providerConnection.count({ where: { tenantId: scope.tenantId } });
  }

  createConnection(scope: TenantScope, row: Omit<Prisma.ProviderConnectionUncheckedCreateInput, 'tenantId'>): Promise<ProviderConnectionRow> {
    return this.client.providerConnection.create({ data: { ...row, tenantId: scope.tenantId } });
  }

  updateConnection(scope: TenantScope, id: string, change: ProviderConnectionChange): Promise<ProviderConnectionRow> {
    return this.client.providerConnection.update({ where: { tenantId_id: { tenantId: scope.tenantId, id } }, data: { ...change, updatedAt: new Date() } });
  }

  async removeConnection(scope: TenantScope, id: string): Promise<void> {
    await this.client.providerConnection.deleteMany({ where: { tenantId: scope.tenantId, id } });
  }
}
