import { join } from 'node:path';
import { loadConfig } from '@berth/config';
import { restrictedViolation } from '@berth/testing';
import type { KubernetesTemplate } from '@berth/config';
import { EXECUTOR_UID, LABEL, NetworkRules, SlotSpec, networkPolicyManifest, podManifest, secretManifest, volumeClaimManifest } from './manifests';

// kubernetes-models is ESM-only with `import`-only exports: its files are loaded by path (Node's require(esm)).
const models = join(__dirname, '../../../../node_modules/kubernetes-models');
/* eslint-disable @typescript-eslint/no-require-imports */
const { Pod } = require(join(models, 'v1/Pod.js'));
const { Secret } = require(join(models, 'v1/Secret.js'));
const { PersistentVolumeClaim } = require(join(models, 'v1/PersistentVolumeClaim.js'));
const { NetworkPolicy } = require(join(models, 'networking.k8s.io/v1/NetworkPolicy.js'));
// The client's own serializer (what it sends), which its index does not export.
const { ObjectSerializer } = require('@kubernetes/client-node/dist/serializer.js');
/* eslint-enable @typescript-eslint/no-require-imports */

/** The object as sent on the wire (client models name some fields differently, `_from`). */
const wire = (object: unknown, type: string) => JSON.parse(JSON.stringify(ObjectSerializer.serialize(object, type)));

const env = {
  BERTH_SANDBOX_DRIVER: 'kubernetes',
  BERTH_K8S_EXECUTOR_IMAGE: 'registry.example/berth-executor:1',
  BERTH_K8S_NAMESPACE: 'sandboxes',
  BERTH_K8S_TEMPLATES: JSON.stringify({
    gpu: {
      image: 'registry.example/berth-executor-gpu:1',
      resources: { limits: { cpu: '4', memory: '8Gi', 'nvidia.com/gpu': '1' } },
      runtimeClassName: 'gvisor',
      nodeSelector: { pool: 'gpu' },
      tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
      imagePullSecrets: ['registry'],
      workspace: { type: 'emptyDir', size: '20Gi' },
      warmPoolSize: 0,
    },
  }),
};

function templates(): Record<string, KubernetesTemplate> {
  const config = loadConfig(env, []);
  return config.kubernetes!.templates;
}

const slotOf = (template: KubernetesTemplate): SlotSpec => ({
  slot: 'berth-1b4e28ba-2fa1-11d2-883f-0016d3cca427',
  namespace: 'sandboxes',
  instance: 'berth-prod',
  template,
  sandboxId: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
  tenantId: '00000000-0000-0000-0000-000000000000',
  pool: 'claimed',
});

describe('Kubernetes manifests of an executor pod', () => {
  it('makes a pod valid for the Kubernetes schema and the restricted profile, from the default template', () => {
    const template = templates().default;
    const pod = wire(podManifest(slotOf(template)), 'V1Pod');
    expect(() => new Pod(pod).validate()).not.toThrow();
    // The schema does refuse a malformed pod (so the line above means something).
    expect(() => new Pod({ ...pod, spec: { ...pod.spec, containers: [{ ...pod.spec.containers[0], ports: [{ containerPort: 'x' }] }] } }).validate()).toThrow();
    expect(restrictedViolation(pod)).toBeNull();
    expect(restrictedViolation({ ...pod, spec: { ...pod.spec, containers: [{ ...pod.spec.containers[0], securityContext: {} }] } })).toMatch(/^violates PodSecurity "restricted:latest": /);
    const container = pod.spec.containers[0];
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Always',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: { runAsNonRoot: true, runAsUser: EXECUTOR_UID, runAsGroup: EXECUTOR_UID, fsGroup: EXECUTOR_UID },
    });
    expect(container.image).toBe('registry.example/berth-executor:1');
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/health', port: 8080 });
    expect(container.volumeMounts).toEqual([
      { name: 'workspace', mountPath: '/workspace' },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(pod.spec.volumes).toContainEqual({ name: 'workspace', persistentVolumeClaim: { claimName: 'berth-1b4e28ba-2fa1-11d2-883f-0016d3cca427' } });
    // The token and (after a claim) the variables come from the Secret; the bind address from the downward API.
    const byName = Object.fromEntries(container.env.map((e: any) => [e.name, e]));
    expect(byName.BERTH_SANDBOX_TOKEN.valueFrom).toEqual({ secretKeyRef: { name: 'berth-1b4e28ba-2fa1-11d2-883f-0016d3cca427', key: 'token' } });
    expect(byName.BERTH_SANDBOX_INIT.valueFrom.secretKeyRef).toMatchObject({ key: 'init', optional: true });
    expect(byName.BERTH_EXECUTOR_HOST.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(byName.BERTH_EXECUTOR_PORT.value).toBe('8080');
    expect(pod.metadata.labels).toEqual({
      [LABEL.managedBy]: 'berth',
      [LABEL.instance]: 'berth-prod',
      [LABEL.sandbox]: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
      [LABEL.tenant]: '00000000-0000-0000-0000-000000000000',
      [LABEL.template]: 'default',
      [LABEL.pool]: 'claimed',
      [LABEL.slot]: 'berth-1b4e28ba-2fa1-11d2-883f-0016d3cca427',
    });
  });

  it("carries a template's image, resources, runtime class, node selector, tolerations, pull secrets and emptyDir", () => {
    const pod = wire(podManifest(slotOf(templates().gpu)), 'V1Pod');
    expect(() => new Pod(pod).validate()).not.toThrow();
    expect(restrictedViolation(pod)).toBeNull();
    expect(pod.spec).toMatchObject({
      runtimeClassName: 'gvisor',
      nodeSelector: { pool: 'gpu' },
      tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
      imagePullSecrets: [{ name: 'registry' }],
    });
    expect(pod.spec.containers[0].image).toBe('registry.example/berth-executor-gpu:1');
    expect(pod.spec.containers[0].resources).toEqual({ requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '4', memory: '8Gi', 'nvidia.com/gpu': '1' } });
    expect(pod.spec.volumes).toContainEqual({ name: 'workspace', emptyDir: { sizeLimit: '20Gi' } });
    expect(pod.metadata.labels[LABEL.template]).toBe('gpu');
  });

  it('makes a valid Secret (token, and init once claimed) and PVC', () => {
    const slot = slotOf(templates().default);
    const warm = wire(secretManifest(slot, 'tok', null), 'V1Secret');
    expect(() => new Secret(warm).validate()).not.toThrow();
    expect(warm.stringData).toEqual({ token: 'tok' });
    const claimed = wire(secretManifest(slot, 'tok', '{"root":"/workspace","env":{}}'), 'V1Secret');
    expect(claimed.stringData).toEqual({ token: 'tok', init: '{"root":"/workspace","env":{}}' });
    const pvc = wire(volumeClaimManifest(slot), 'V1PersistentVolumeClaim');
    expect(() => new PersistentVolumeClaim(pvc).validate()).not.toThrow();
    expect(pvc.spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } });
  });

  describe('NetworkPolicy', () => {
    const rules = (over: Partial<NetworkRules>): NetworkRules => ({
      network: 'none',
      controlPlaneSelector: { 'app.kubernetes.io/name': 'berth' },
      controlPlaneNamespace: null,
      clusterCidrs: ['10.0.0.0/8', '172.16.0.0/12'],
      egressCidrs: [],
      ...over,
    });
    const policyOf = (over: Partial<NetworkRules>) => {
      const policy = wire(networkPolicyManifest(slotOf(templates().default), rules(over)), 'V1NetworkPolicy');
      expect(() => new NetworkPolicy(policy).validate()).not.toThrow();
      return policy;
    };

    it('lets in only the control plane on 8080 and, for `none`, lets nothing out', () => {
      const policy = policyOf({ network: 'none' });
      expect(policy.spec.podSelector).toEqual({ matchLabels: { [LABEL.slot]: 'berth-1b4e28ba-2fa1-11d2-883f-0016d3cca427' } });
      expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(policy.spec.ingress).toEqual([{ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'berth' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }]);
      expect(policy.spec.egress).toEqual([]);
    });

    it('lets in the control plane of another namespace by that namespace and its labels', () => {
      const policy = policyOf({ controlPlaneNamespace: 'berth-system' });
      expect(policy.spec.ingress[0].from).toEqual([
        { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'berth' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'berth-system' } } },
      ]);
    });

    it('for `egress`, opens the outside but not link-local nor the cluster, and DNS to kube-dns', () => {
      const policy = policyOf({ network: 'egress' });
      expect(policy.spec.egress).toEqual([
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12'] } }] },
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ]);
    });

    it("adds the tenant's allowlist to `egress`", () => {
      const policy = policyOf({ network: 'egress', egressCidrs: ['203.0.113.0/24', '198.51.100.7/32'] });
      expect(policy.spec.egress[1]).toEqual({ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }, { ipBlock: { cidr: '198.51.100.7/32' } }] });
    });
  });
});

describe('Kubernetes driver configuration', () => {
  it('settles the default template from BERTH_K8S_* and a template from its overrides', () => {
    const config = loadConfig({ ...env, BERTH_K8S_WORKSPACE_SIZE: '5Gi', BERTH_K8S_STORAGE_CLASS: 'fast', BERTH_WARM_POOL_SIZE: '3' }, []);
    expect(config.sandboxDriver).toBe('kubernetes');
    expect(config.kubernetes).toMatchObject({
      namespace: 'sandboxes',
      controlPlaneSelector: { 'app.kubernetes.io/name': 'berth' },
      controlPlaneNamespace: null,
      instance: 'berth',
      clusterCidrs: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'],
      readyTimeoutMs: 120_000,
    });
    expect(config.kubernetes!.templates.default).toMatchObject({ workspace: { type: 'pvc', size: '5Gi', storageClassName: 'fast' }, warmPoolSize: 3 });
    expect(config.kubernetes!.templates.gpu).toMatchObject({ workspace: { type: 'emptyDir', size: '20Gi', storageClassName: 'fast' }, warmPoolSize: 0 });
  });

  it.each([
    [{ BERTH_K8S_EXECUTOR_IMAGE: '' }, /BERTH_K8S_EXECUTOR_IMAGE is required/],
    [{ BERTH_K8S_TEMPLATES: '{"gpu":{"image":7}}' }, /BERTH_K8S_TEMPLATES: gpu.image/],
    [{ BERTH_K8S_TEMPLATES: '{"gpu":{"privileged":true}}' }, /BERTH_K8S_TEMPLATES/],
    [{ BERTH_K8S_TEMPLATES: '{"Bad_Name":{}}' }, /DNS label/],
    [{ BERTH_K8S_TEMPLATES: '{"gpu":{"resources":{"limits":{"cpu":"lots"}}}}' }, /quantity/],
    [{ BERTH_K8S_TEMPLATES: 'not json' }, /JSON object/],
    [{ BERTH_K8S_WORKSPACE: 'hostPath' }, /pvc or emptyDir/],
    [{ BERTH_K8S_CLUSTER_CIDRS: '10.0.0.0/8,nope' }, /IPv4 CIDRs/],
    [{ BERTH_K8S_CONTROL_PLANE_SELECTOR: 'app in (berth)' }, /label=value/],
    [{ BERTH_K8S_CONTROL_PLANE_NAMESPACE: 'Berth System' }, /namespace name/],
    [{ BERTH_K8S_INSTANCE: '-release-' }, /label value/],
  ])('refuses %j', (over, message) => {
    expect(() => loadConfig({ ...env, ...over }, [])).toThrow(message);
  });

  it('needs none of it with the local driver', () => {
    expect(loadConfig({}, []).kubernetes).toBeNull();
  });
});
