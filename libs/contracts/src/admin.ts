import { z } from 'zod';
import { cidrRange, cidrsOverlap, LINK_LOCAL_CIDR } from './cidr';
import { SandboxNetworkSchema } from './sandbox';

const limit = (what: string) =>
  z.number().int().min(0).max(1_000_000).nullable().optional().describe(`${what}; 0 = no limit, null or absent = the server default`);

const EgressCidr = z
  .string()
  .refine((cidr) => cidrRange(cidr) !== null, 'must be an IPv4 CIDR such as 203.0.113.0/24')
  .refine((cidr) => !cidrsOverlap(cidr, LINK_LOCAL_CIDR), `must not overlap ${LINK_LOCAL_CIDR} (link-local: cloud metadata)`);

/** A tenant's own limits; each field overrides the BERTH_TENANT_* default when set. */
export const TenantQuotasSchema = z
  .strictObject({
    max_sandboxes: limit('sandboxes starting or running at once'),
    max_running_conversations: limit('conversations running at once'),
    requests_per_minute: limit('authenticated API requests per minute, all keys together'),
    max_sockets_per_key: limit('open WebSockets per API key'),
    network: SandboxNetworkSchema.nullable()
      .optional()
      .describe("the most network the tenant's sandboxes may have, and what they get by default; null or absent = the server default (BERTH_SANDBOX_NETWORK)"),
    egress_cidrs: z
      .array(EgressCidr)
      .max(64)
      .nullable()
      .optional()
      .describe("IPv4 ranges the tenant's `egress` sandboxes may reach beyond the outside (Kubernetes driver), never link-local nor the cluster's (BERTH_K8S_CLUSTER_CIDRS); null or absent = none"),
  })
  .meta({ id: 'TenantQuotas' });
export type TenantQuotas = z.output<typeof TenantQuotasSchema>;
export const QUOTA_FIELDS = ['max_sandboxes', 'max_running_conversations', 'requests_per_minute', 'max_sockets_per_key', 'network', 'egress_cidrs'] as const;

const TenantName = z.string().trim().min(1).max(200);

export const CreateTenantRequestSchema = z
  .strictObject({ name: TenantName, quotas: TenantQuotasSchema.default({}) })
  .meta({ id: 'CreateTenantRequest' });

export const UpdateTenantRequestSchema = z
  .strictObject({
    name: TenantName.optional(),
    quotas: TenantQuotasSchema.optional().describe('merged field by field into the stored quotas; null resets a field to the default'),
  })
  .meta({ id: 'UpdateTenantRequest' });

const EffectiveQuotas = z.object({
  max_sandboxes: z.number().int(),
  max_running_conversations: z.number().int(),
  requests_per_minute: z.number().int(),
  max_sockets_per_key: z.number().int(),
  network: SandboxNetworkSchema,
  egress_cidrs: z.array(z.string()),
});

export const TenantInfoSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    quotas: z.record(z.string(), z.union([z.number().int(), SandboxNetworkSchema, z.array(z.string())]).nullable()).describe('as stored: null = the server default'),
    effective_quotas: EffectiveQuotas.describe('what applies now (0 = no limit)'),
    created_at: z.string(),
  })
  .meta({ id: 'TenantInfo' });

export const TenantPageSchema = z
  .object({ items: z.array(TenantInfoSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'TenantPage' });

export const AdminPageQuerySchema = z.looseObject({
  page_id: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(100),
});

export const CreateApiKeyRequestSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    expires_at: z.iso
      .datetime({ offset: true, local: true })
      .nullish()
      // A naive datetime is taken as UTC.
      .transform((v) => (v ? new Date(/[zZ]|[+-]\d{2}:?\d{2}$/.test(v) ? v : `${v}Z`) : null))
      .refine((d) => d === null || d.getTime() > Date.now(), 'expires_at must be in the future')
      .describe('ISO datetime after which the key is refused (naive = UTC)'),
  })
  .meta({ id: 'CreateApiKeyRequest' });

export const ApiKeyInfoSchema = z
  .object({
    id: z.uuid(),
    tenant_id: z.uuid(),
    name: z.string(),
    prefix: z.string().describe('first characters of the key'),
    last_four: z.string(),
    created_at: z.string(),
    last_used_at: z.string().nullable().describe('updated at most once a minute'),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .meta({ id: 'ApiKeyInfo' });

export const CreatedApiKeySchema = ApiKeyInfoSchema.extend({
  key: z.string().describe('the key itself: shown this once, only its SHA-256 is stored'),
}).meta({ id: 'CreatedApiKey' });

export const ApiKeyPageSchema = z
  .object({ items: z.array(ApiKeyInfoSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'ApiKeyPage' });

export const AUDIT_ACTIONS = ['create', 'update', 'run', 'pause', 'resume', 'interrupt', 'delete', 'revoke', 'reprovision', 'condense'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
export const AUDIT_TARGETS = ['conversation', 'sandbox', 'tenant', 'api_key'] as const;
export type AuditTarget = (typeof AUDIT_TARGETS)[number];

export const AuditRecordSchema = z
  .object({
    seq: z.string().describe('position in the log (newest is highest)'),
    at: z.string(),
    tenant_id: z.uuid().nullable(),
    key_id: z.string().nullable().describe('the tenant key used: api key id, env:<n> or open'),
    admin_key_index: z.number().int().nullable().describe('index of the BERTH_ADMIN_API_KEYS key used'),
    action: z.enum(AUDIT_ACTIONS),
    target_type: z.enum(AUDIT_TARGETS),
    target_id: z.string(),
    request_id: z.string().nullable(),
  })
  .meta({ id: 'AuditRecord' });

export const AuditPageSchema = z
  .object({ items: z.array(AuditRecordSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'AuditPage' });

export const AuditQuerySchema = z.looseObject({
  tenant_id: z.uuid().optional(),
  page_id: z.string().regex(/^\d{1,19}$/).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(100),
});
