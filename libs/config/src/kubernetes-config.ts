import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { cidrRange } from '@berth/contracts';

/** Where the executor pods' workspace lives: a PVC kept across pause, or an emptyDir lost with the pod. */
export interface KubernetesWorkspace {
  type: 'pvc' | 'emptyDir';
  /** PVC size (and emptyDir sizeLimit), a Kubernetes quantity such as 10Gi */
  size: string;
  /** null: the cluster's default storage class */
  storageClassName: string | null;
}

const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?([KMGTPE]i?|m|[eE][0-9]+)?$/, 'a Kubernetes quantity such as 500m, 2Gi');
const resourceList = z.record(z.string().min(1), quantity);
const toleration = z
  .object({
    key: z.string().optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.number().int().optional(),
  })
  .strict();

/** One template's overrides of the default template (BERTH_K8S_TEMPLATES, by template name). */
const templateOverrides = z
  .object({
    image: z.string().min(1).optional(),
    resources: z.object({ requests: resourceList.optional(), limits: resourceList.optional() }).strict().optional(),
    runtimeClassName: z.string().min(1).optional(),
    nodeSelector: z.record(z.string().min(1), z.string()).optional(),
    tolerations: z.array(toleration).optional(),
    imagePullSecrets: z.array(z.string().min(1)).optional(),
    workspace: z
      .object({ type: z.enum(['pvc', 'emptyDir']).optional(), size: quantity.optional(), storageClassName: z.string().min(1).optional() })
      .strict()
      .optional(),
    warmPoolSize: z.number().int().min(0).max(100).optional(),
  })
  .strict();

const templateName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/);
const templatesSchema = z.record(z.string(), templateOverrides).superRefine((templates, ctx) => {
  for (const name of Object.keys(templates)) {
    if (!templateName.safeParse(name).success) ctx.addIssue({ code: 'custom', path: [name], message: 'a template name is a DNS label of at most 32 characters' });
  }
});

/** A pod template with every field settled (the default one, or the default with a template's overrides). */
export interface KubernetesTemplate {
  name: string;
  image: string;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  runtimeClassName: string | null;
  nodeSelector: Record<string, string>;
  tolerations: Array<z.infer<typeof toleration>>;
  imagePullSecrets: string[];
  workspace: KubernetesWorkspace;
  warmPoolSize: number;
}

export interface KubernetesConfig {
  namespace: string;
  /** KUBECONFIG; null: in-cluster config (service account) */
  kubeconfig: string | null;
  /** By name; `default` always exists. */
  templates: Record<string, KubernetesTemplate>;
  /** Label selector (`k=v,k2=v2`) of Berth's own pods, the only ones allowed to reach an executor. */
  controlPlaneSelector: Record<string, string>;
  /** Their namespace when it is not the sandboxes' (BERTH_K8S_CONTROL_PLANE_NAMESPACE); null: the same. */
  controlPlaneNamespace: string | null;
  /** This installation's name (BERTH_K8S_INSTANCE), a label on everything it makes and in every selector it lists by. */
  instance: string;
  /** Pod and service ranges (and link-local) never opened to a sandbox's egress. */
  clusterCidrs: string[];
  readyTimeoutMs: number;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

export const DEFAULT_CLUSTER_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

type Env = Record<string, string | undefined>;

/** `a=b,c=d` as a map (only equality: a NetworkPolicy's podSelector takes matchLabels). */
export function parseEqualitySelector(raw: string, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)$/.exec(part);
    if (!match) throw new Error(`${name} must be a list of label=value (got ${JSON.stringify(part)})`);
    out[match[1]] = match[2];
  }
  if (!Object.keys(out).length) throw new Error(`${name} must name at least one label`);
  return out;
}

/** The Kubernetes driver's settings (README "Configuration"); `fail` reports a bad value. */
export function readKubernetesConfig(env: Env, warmPoolSize: number, fail: (message: string) => never): KubernetesConfig {
  const image = env.BERTH_K8S_EXECUTOR_IMAGE?.trim();
  if (!image) fail('BERTH_K8S_EXECUTOR_IMAGE is required with BERTH_SANDBOX_DRIVER=kubernetes');
  const workspaceType = env.BERTH_K8S_WORKSPACE?.trim() || 'pvc';
  if (workspaceType !== 'pvc' && workspaceType !== 'emptyDir') fail(`BERTH_K8S_WORKSPACE must be pvc or emptyDir (got ${JSON.stringify(workspaceType)})`);
  const size = env.BERTH_K8S_WORKSPACE_SIZE?.trim() || '10Gi';
  if (!quantity.safeParse(size).success) fail(`BERTH_K8S_WORKSPACE_SIZE must be a Kubernetes quantity such as 10Gi (got ${JSON.stringify(size)})`);
  const base: KubernetesTemplate = {
    name: 'default',
    image: image as string,
    resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
    runtimeClassName: null,
    nodeSelector: {},
    tolerations: [],
    imagePullSecrets: [],
    workspace: { type: workspaceType as KubernetesWorkspace['type'], size, storageClassName: env.BERTH_K8S_STORAGE_CLASS?.trim() || null },
    warmPoolSize,
  };
  let overrides: z.infer<typeof templatesSchema> = {};
  if (env.BERTH_K8S_TEMPLATES?.trim()) {
    let json: unknown;
    try {
      json = JSON.parse(env.BERTH_K8S_TEMPLATES);
    } catch {
      fail('BERTH_K8S_TEMPLATES must be a JSON object of templates');
    }
    const parsed = templatesSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      fail(`BERTH_K8S_TEMPLATES: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
    }
    overrides = parsed.data;
  }
  const templates: Record<string, KubernetesTemplate> = { default: base };
  for (const [name, o] of Object.entries(overrides)) {
    const from = name === 'default' ? base : templates.default;
    templates[name] = {
      name,
      image: o.image ?? from.image,
      resources: { requests: o.resources?.requests ?? from.resources.requests, limits: o.resources?.limits ?? from.resources.limits },
      runtimeClassName: o.runtimeClassName ?? from.runtimeClassName,
      nodeSelector: o.nodeSelector ?? from.nodeSelector,
      tolerations: o.tolerations ?? from.tolerations,
      imagePullSecrets: o.imagePullSecrets ?? from.imagePullSecrets,
      workspace: { ...from.workspace, ...o.workspace },
      warmPoolSize: o.warmPoolSize ?? from.warmPoolSize,
    };
  }
  const clusterCidrs = (env.BERTH_K8S_CLUSTER_CIDRS?.trim() ? env.BERTH_K8S_CLUSTER_CIDRS.split(',') : DEFAULT_CLUSTER_CIDRS).map((c) => c.trim()).filter(Boolean);
  const bad = clusterCidrs.find((c) => !cidrRange(c));
  if (bad) fail(`BERTH_K8S_CLUSTER_CIDRS must be a comma list of IPv4 CIDRs (got ${JSON.stringify(bad)})`);
  let controlPlaneSelector: Record<string, string>;
  try {
    controlPlaneSelector = parseEqualitySelector(env.BERTH_K8S_CONTROL_PLANE_SELECTOR?.trim() || 'app.kubernetes.io/name=berth', 'BERTH_K8S_CONTROL_PLANE_SELECTOR');
  } catch (err) {
    fail((err as Error).message);
  }
  const controlPlaneNamespace = env.BERTH_K8S_CONTROL_PLANE_NAMESPACE?.trim() || null;
  if (controlPlaneNamespace && !DNS_LABEL.test(controlPlaneNamespace)) fail(`BERTH_K8S_CONTROL_PLANE_NAMESPACE must be a namespace name (got ${JSON.stringify(controlPlaneNamespace)})`);
  const instance = env.BERTH_K8S_INSTANCE?.trim() || 'berth';
  if (!LABEL_VALUE.test(instance)) fail(`BERTH_K8S_INSTANCE must be a label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends (got ${JSON.stringify(instance)})`);
  const rawTimeout = env.BERTH_K8S_READY_TIMEOUT_MS?.trim() || '120000';
  const readyTimeoutMs = Number(rawTimeout);
  if (!Number.isInteger(readyTimeoutMs) || readyTimeoutMs < 1000) fail(`BERTH_K8S_READY_TIMEOUT_MS must be an integer ≥ 1000 (got ${JSON.stringify(rawTimeout)})`);
  return {
    namespace: env.BERTH_K8S_NAMESPACE?.trim() || serviceAccountNamespace() || 'default',
    kubeconfig: env.KUBECONFIG?.trim() || null,
    templates,
    controlPlaneSelector: controlPlaneSelector!,
    controlPlaneNamespace,
    instance,
    clusterCidrs,
    readyTimeoutMs,
  };
}

function serviceAccountNamespace(): string | null {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || null;
  } catch {
    return null;
  }
}
