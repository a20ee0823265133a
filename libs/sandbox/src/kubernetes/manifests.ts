import type { V1NetworkPolicy, V1NetworkPolicyEgressRule, V1NetworkPolicyPeer, V1PersistentVolumeClaim, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { KubernetesTemplate } from '@berth/config';
import { EXECUTOR_PATHS, LINK_LOCAL_CIDR } from '@berth/contracts';
import type { ExecutorInitRequest } from '@berth/contracts';
import { POD_WORKSPACE } from '../sandbox-driver';

export const EXECUTOR_PORT = 8080;
/** The executor's uid, gid and fsGroup: not root, and the owner of the workspace volume's files. */
export const EXECUTOR_UID = 10001;

export const LABEL = {
  managedBy: 'app.kubernetes.io/managed-by',
  /** The Berth installation (BERTH_K8S_INSTANCE): two releases sharing a namespace never touch each other's objects. */
  instance: 'app.kubernetes.io/instance',
  sandbox: 'berth.dev/sandbox',
  tenant: 'berth.dev/tenant',
  template: 'berth.dev/template',
  pool: 'berth.dev/pool',
  /** The pod's own name, on the pod and everything made for it: a NetworkPolicy selects its pod by it. */
  slot: 'berth.dev/slot',
} as const;

export const MANAGED_BY = 'berth';

/** A member of the warm pool before its claim: sandbox and tenant labels say so. */
export const UNCLAIMED = 'none';

/** One pod and what belongs to it: its name is also the name of its Secret, PVC and NetworkPolicy. */
export interface SlotSpec {
  /** pod name (DNS label) */
  slot: string;
  namespace: string;
  /** the installation it belongs to */
  instance: string;
  template: KubernetesTemplate;
  /** the sandbox it serves, or UNCLAIMED (warm) */
  sandboxId: string;
  tenantId: string;
  pool: 'warm' | 'claimed';
}

export function slotLabels(spec: SlotSpec): Record<string, string> {
  return {
    [LABEL.managedBy]: MANAGED_BY,
    [LABEL.instance]: spec.instance,
    [LABEL.sandbox]: spec.sandboxId,
    [LABEL.tenant]: labelValue(spec.tenantId),
    [LABEL.template]: spec.template.name,
    [LABEL.pool]: spec.pool,
    [LABEL.slot]: spec.slot,
  };
}

/** A label value is at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric. */
export function labelValue(raw: string): string {
  const cleaned = raw.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned || UNCLAIMED;
}

/** The `/api/init` body a claimed executor serves: its root and the sandbox's variables. */
export function initBody(env: Record<string, string>): string {
  const body: ExecutorInitRequest = { root: POD_WORKSPACE, env };
  return JSON.stringify(body);
}

/**
 * The Secret of one pod: the executor's token, and once the pod serves a sandbox, `init` (the
 * sandbox's variables): a restarted container reads them from here and serves the same sandbox.
 */
export function secretManifest(spec: SlotSpec, token: string, init: string | null): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: spec.slot, namespace: spec.namespace, labels: slotLabels(spec) },
    type: 'Opaque',
    stringData: init === null ? { token } : { token, init },
  };
}

export function volumeClaimManifest(spec: SlotSpec): V1PersistentVolumeClaim {
  const { workspace } = spec.template;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: spec.slot, namespace: spec.namespace, labels: slotLabels(spec) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: workspace.size } },
      ...(workspace.storageClassName ? { storageClassName: workspace.storageClassName } : {}),
    },
  };
}

/** The executor's pod, hardened to the Pod Security "restricted" profile; the token and variables come from its Secret. */
export function podManifest(spec: SlotSpec): V1Pod {
  const { template } = spec;
  const workspaceVolume =
    template.workspace.type === 'pvc'
      ? { name: 'workspace', persistentVolumeClaim: { claimName: spec.slot } }
      : { name: 'workspace', emptyDir: { sizeLimit: template.workspace.size } };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: spec.slot, namespace: spec.namespace, labels: slotLabels(spec) },
    spec: {
      restartPolicy: 'Always',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(template.runtimeClassName ? { runtimeClassName: template.runtimeClassName } : {}),
      ...(Object.keys(template.nodeSelector).length ? { nodeSelector: template.nodeSelector } : {}),
      ...(template.tolerations.length ? { tolerations: template.tolerations } : {}),
      ...(template.imagePullSecrets.length ? { imagePullSecrets: template.imagePullSecrets.map((name) => ({ name })) } : {}),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: EXECUTOR_UID,
        runAsGroup: EXECUTOR_UID,
        fsGroup: EXECUTOR_UID,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: 'executor',
          image: template.image,
          ports: [{ name: 'executor', containerPort: EXECUTOR_PORT, protocol: 'TCP' }],
          env: [
            { name: 'BERTH_EXECUTOR_HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            { name: 'BERTH_EXECUTOR_PORT', value: String(EXECUTOR_PORT) },
            { name: 'BERTH_EXECUTOR_DORMANT', value: 'pod' },
            { name: 'BERTH_SANDBOX_TOKEN', valueFrom: { secretKeyRef: { name: spec.slot, key: 'token' } } },
            { name: 'BERTH_SANDBOX_INIT', valueFrom: { secretKeyRef: { name: spec.slot, key: 'init', optional: true } } },
            { name: 'HOME', value: POD_WORKSPACE },
          ],
          workingDir: POD_WORKSPACE,
          resources: template.resources,
          readinessProbe: { httpGet: { path: EXECUTOR_PATHS.health, port: EXECUTOR_PORT }, periodSeconds: 2, failureThreshold: 3 },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          },
          volumeMounts: [
            { name: 'workspace', mountPath: POD_WORKSPACE },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [workspaceVolume, { name: 'tmp', emptyDir: {} }],
    },
  };
}

export interface NetworkRules {
  network: 'none' | 'egress';
  /** Berth's own pods (the only ingress) */
  controlPlaneSelector: Record<string, string>;
  /** their namespace, when it is not the sandboxes' (a podSelector alone matches only pods of the policy's namespace) */
  controlPlaneNamespace: string | null;
  clusterCidrs: string[];
  /** the tenant's allowlist, opened beside the outside (already checked to avoid link-local and the cluster) */
  egressCidrs: string[];
}

/**
 * The pod's NetworkPolicy: ingress only from Berth's pods on the executor's port; egress none, or
 * the outside but never link-local nor the cluster's ranges, plus the tenant's allowlist, plus DNS
 * (a name must resolve for the outside to be of use, and the cluster's resolver is inside a cluster range).
 */
export function networkPolicyManifest(spec: SlotSpec, rules: NetworkRules): V1NetworkPolicy {
  const egress: V1NetworkPolicyEgressRule[] =
    rules.network === 'none'
      ? []
      : [
          { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: [LINK_LOCAL_CIDR, ...rules.clusterCidrs] } }] },
          ...(rules.egressCidrs.length ? [{ to: rules.egressCidrs.map((cidr) => ({ ipBlock: { cidr } })) }] : []),
          {
            to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
            ports: [
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 53 },
            ],
          },
        ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: spec.slot, namespace: spec.namespace, labels: slotLabels(spec) },
    spec: {
      podSelector: { matchLabels: { [LABEL.slot]: spec.slot } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ _from: [controlPlanePeer(rules)], ports: [{ protocol: 'TCP', port: EXECUTOR_PORT }] }],
      egress,
    },
  };
}

/** Berth's pods as a NetworkPolicy peer: by their labels, in their own namespace when it is another. */
function controlPlanePeer(rules: NetworkRules): V1NetworkPolicyPeer {
  const podSelector = { matchLabels: rules.controlPlaneSelector };
  if (!rules.controlPlaneNamespace) return { podSelector };
  return { podSelector, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': rules.controlPlaneNamespace } } };
}
