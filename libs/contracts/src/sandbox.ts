import { z } from 'zod';

/** The observed status of a sandbox: `error` (it failed: `status_reason` says why), `lost` (its executor vanished; the next call that needs it starts it again). */
export const SANDBOX_STATUSES = ['starting', 'running', 'paused', 'stopped', 'error', 'lost'] as const;
export type SandboxStatusName = (typeof SANDBOX_STATUSES)[number];

/** What the control plane wants of a sandbox; the reconciler drives its status towards it. */
export const SANDBOX_DESIRED_STATES = ['running', 'stopped', 'destroyed'] as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const SANDBOX_NETWORKS = ['none', 'egress'] as const;
export const SandboxNetworkSchema = z
  .enum(SANDBOX_NETWORKS)
  .describe("`none`: the sandbox's own loopback only; `egress`: connections out (never to the server's own host)")
  .meta({ id: 'SandboxNetwork' });

export const CreateSandboxRequestSchema = z
  .strictObject({
    env: z.record(z.string().regex(ENV_NAME, 'Environment variable names are letters, digits and _').max(256), z.string().max(32_768)).default({}),
    idle_timeout: z.number().int().min(10).max(30 * 24 * 3600).default(1800).describe('seconds without activity before the sandbox is stopped'),
    ttl: z.number().int().min(10).max(365 * 24 * 3600).nullish().describe('seconds after creation before the sandbox is destroyed'),
    template: z.string().max(200).nullish().describe('reserved for the Kubernetes driver (pod template name)'),
    network: SandboxNetworkSchema.optional().describe("the sandbox's network, at most the tenant's allowance (default: the allowance)"),
  })
  .meta({ id: 'CreateSandboxRequest' });
export type CreateSandboxRequest = z.output<typeof CreateSandboxRequestSchema>;

export const SandboxInfoSchema = z
  .object({
    id: z.uuid(),
    status: z.enum(SANDBOX_STATUSES),
    status_reason: z.string().nullable().describe('why it is in `error` or `lost` (a reason such as ImagePullBackOff, Unschedulable, CrashLoopBackOff), else null'),
    desired_state: z.enum(SANDBOX_DESIRED_STATES),
    driver: z.string(),
    url: z.string().describe('base URL of the sandbox as an agent server (`/sandboxes/{id}`)'),
    env: z.array(z.string()).describe('names of the environment variables given at creation (values are never shown)'),
    network: SandboxNetworkSchema,
    idle_timeout: z.number().int(),
    ttl: z.number().int().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    last_activity_at: z.string(),
  })
  .meta({ id: 'SandboxInfo' });

export const SandboxPageSchema = z
  .object({ items: z.array(SandboxInfoSchema), next_page_id: z.string().nullable() })
  .meta({ id: 'SandboxPage' });

export const SandboxSearchQuerySchema = z.looseObject({
  page_id: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(100),
  status: z.enum(SANDBOX_STATUSES).optional(),
});
