/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'pg';
import { loadConfig } from '@berth/config';
import { Database } from '@berth/persistence';
import { restrictedViolation, strictDecodingError } from '@berth/testing';
import { KubeObject, parseManifests } from './support/manifests';

/**
 * The chart (helm/berth) through the real helm v4 (scripts/helm.js): `helm lint --strict` and
 * `helm template` on several value sets, every rendered object checked against the Kubernetes
 * schemas (strict on unknown fields) and every pod against the restricted Pod Security profile;
 * its configuration read by Berth's own loader; its migration Job run against PostgreSQL. And the
 * images (deploy/Dockerfile), which cannot be built here: what they copy exists and what they start
 * runs.
 */

const ROOT = join(__dirname, '..');
const CHART = join(ROOT, 'helm/berth');
const { ensureHelm } = require('../scripts/helm.js') as { ensureHelm(): string };
const { bundle } = require('../scripts/executor-bundle.js') as { bundle(dir: string): string[] };

const RELEASE = 'prod';
const NAMESPACE = 'berth';
const UID = 10001;
const EXECUTOR_PORT = 8080;
const DRIVER_VERBS = ['create', 'get', 'list', 'watch', 'patch', 'update', 'delete'];

const work = mkdtempSync(join(tmpdir(), 'berth-helm-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** helm with its cache, config and data folders of its own (nothing read from or written to $HOME). */
function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env, HELM_CACHE_HOME: join(work, 'cache'), HELM_CONFIG_HOME: join(work, 'config'), HELM_DATA_HOME: join(work, 'data') };
  return spawnSync(ensureHelm(), args, { encoding: 'utf8', env });
}

let valueFiles = 0;
function valuesFile(values: object): string {
  const file = join(work, `values-${valueFiles++}.json`);
  writeFileSync(file, JSON.stringify(values));
  return file;
}

function render(values: object): KubeObject[] {
  const result = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, '-f', valuesFile(values)]);
  if (result.status !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

const only = (objects: KubeObject[], kind: string, name?: string) => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0];
};
const podSpecOf = (o: KubeObject) => o.spec.template.spec;
/** The pod a workload makes, as the admission sees it. */
const podOf = (o: KubeObject, spec = podSpecOf(o)) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: o.metadata.name }, spec });
const envOf = (container: any) => Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e]));

// What the chart cannot do without; everything else at its default.
const REQUIRED = {
  database: { url: 'postgresql://berth:pw@postgres:5432/berth' },
  redis: { url: 'redis://redis:6379/0' },
  secretKey: { value: 'a-32-byte-secret-key-for-fernet!' },
  executorImage: { repository: 'registry.example/berth-executor' },
};
const EXISTING_SECRETS = {
  image: { repository: 'registry.example/berth', tag: '1.2.3' },
  executorImage: { repository: 'registry.example/berth-executor', digest: `sha256:${'a'.repeat(64)}` },
  database: { existingSecret: { name: 'berth-db', key: 'app-url' } },
  redis: { existingSecret: { name: 'berth-redis', key: 'url' } },
  secretKey: { existingSecret: { name: 'berth-keys', key: 'OH_SECRET_KEY' } },
  apiKeys: { existingSecret: { name: 'berth-keys', key: 'OH_SESSION_API_KEYS' } },
  adminApiKeys: { existingSecret: { name: 'berth-keys', key: 'BERTH_ADMIN_API_KEYS' } },
  migration: { database: { existingSecret: { name: 'berth-db', key: 'owner-url' } } },
  gateway: { autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 60 } },
  worker: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 20, targetCPUUtilizationPercentage: 70, targetMemoryUtilizationPercentage: 80 } },
  ingress: {
    enabled: true,
    className: 'nginx',
    annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt' },
    hosts: [{ host: 'berth.example.com', paths: [{ path: '/', pathType: 'Prefix' }] }],
    tls: [{ secretName: 'berth-tls', hosts: ['berth.example.com'] }],
  },
  sandbox: { namespace: 'sandboxes' },
};
const TEMPLATES = {
  ...REQUIRED,
  apiKeys: { values: ['key-1', 'key-2'] },
  extraEnv: [{ name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'llm-keys', key: 'openai' } } }],
  extraEnvFrom: [{ secretRef: { name: 'berth-extra' } }],
  gateway: {
    replicas: 3,
    resources: { requests: { cpu: '200m', memory: '512Mi' }, limits: { memory: '2Gi' } },
    autoscaling: { enabled: false, minReplicas: 2, maxReplicas: 10 },
    podAnnotations: { 'prometheus.io/scrape': 'true' },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'berth', effect: 'NoSchedule' }],
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'gateway' } } } },
        ],
      },
    },
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'gateway' } } }],
  },
  sandbox: {
    workspace: { type: 'emptyDir', size: '5Gi' },
    warmPoolSize: 4,
    templates: {
      gvisor: {
        runtimeClassName: 'gvisor',
        resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '4Gi' } },
        nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' },
        tolerations: [{ key: 'sandbox.gke.io/runtime', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
        imagePullSecrets: ['regcred'],
        workspace: { type: 'pvc', size: '20Gi', storageClassName: 'fast' },
        warmPoolSize: 1,
      },
    },
    clusterCidrs: ['10.0.0.0/8', '172.20.0.0/16'],
    readyTimeoutMs: 300000,
    reconcileIntervalMs: 0,
  },
};
const VALUE_SETS: Array<[string, object]> = [
  ['defaults', REQUIRED],
  ['HPA, Ingress with TLS, existing Secrets, another sandbox namespace', EXISTING_SECRETS],
  ['emptyDir workspace and custom templates', TEMPLATES],
];

describe('helm/berth: lint and render', () => {
  it.each(VALUE_SETS)('passes helm lint --strict (%s)', (_name, values) => {
    const result = helm(['lint', '--strict', CHART, '--namespace', NAMESPACE, '-f', valuesFile(values)]);
    expect(result.stderr + result.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(result.status).toBe(0);
  });

  it.each(VALUE_SETS)('renders only objects valid for the Kubernetes schemas, with no unknown field (%s)', (_name, values) => {
    const objects = render(values);
    expect(objects.length).toBeGreaterThan(10);
    for (const object of objects) {
      expect({ object: `${object.kind}/${object.metadata.name}`, error: strictDecodingError(object) }).toEqual({ object: `${object.kind}/${object.metadata.name}`, error: null });
    }
  });

  it('the checks refuse a malformed object and an unknown field (so passing them means something)', () => {
    const deployment = only(render(REQUIRED), 'Deployment', `${RELEASE}-berth-gateway`);
    const container = podSpecOf(deployment).containers[0];
    const badPort = { ...deployment, spec: { ...deployment.spec, template: { ...deployment.spec.template, spec: { ...podSpecOf(deployment), containers: [{ ...container, ports: [{ containerPort: 'x' }] }] } } } };
    expect(strictDecodingError(badPort)).toMatch(/cannot unmarshal string into Go struct field spec\.template\.spec\.containers\.ports\.containerPort of type int32/);
    const typo = { ...deployment, spec: { ...deployment.spec, replicass: 2, template: { ...deployment.spec.template, spec: { ...podSpecOf(deployment), containers: [{ ...container, securityContxt: {} }] } } } };
    expect(strictDecodingError(typo)).toBe(
      'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.template.spec.containers[0].securityContxt", unknown field "spec.replicass"',
    );
    expect(restrictedViolation(podOf(deployment, { ...podSpecOf(deployment), containers: [{ ...container, securityContext: {} }] }))).toMatch(/allowPrivilegeEscalation != false.*unrestricted capabilities/);
  });

  it.each(VALUE_SETS)('runs every pod as the restricted profile wants it: uid 10001, read-only root, /tmp an emptyDir (%s)', (_name, values) => {
    const objects = render(values);
    const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'Job');
    expect(workloads.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([`Deployment/${RELEASE}-berth-gateway`, `Deployment/${RELEASE}-berth-worker`, `Job/${RELEASE}-berth-migrate`]);
    for (const workload of workloads) {
      const spec = podSpecOf(workload);
      expect(restrictedViolation(podOf(workload, spec))).toBeNull();
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } });
      expect(spec.enableServiceLinks).toBe(false);
      // Only the gateway and worker use the API server (the kubernetes driver).
      expect(spec.automountServiceAccountToken).toBe(workload.kind === 'Deployment');
      for (const container of spec.containers) {
        expect(container.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(container.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
      }
      expect(spec.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '1Gi' } }]);
    }
  });

  it('refuses a value set with an unknown key, at any depth (values.schema.json)', () => {
    const typos: object[] = [
      { ...REQUIRED, replicaCount: 3 },
      { ...REQUIRED, gateway: { replicas: 2, resourcez: {} } },
      { ...REQUIRED, sandbox: { workspace: { type: 'pvc', size: '10Gi', storageClass: 'fast' } } },
      { ...REQUIRED, sandbox: { templates: { gvisor: { runtimeClass: 'gvisor' } } } },
      { ...REQUIRED, ingress: { enabled: true, hosts: [{ host: 'a.example', paths: [{ path: '/', pathtype: 'Prefix' }] }] } },
    ];
    for (const values of typos) {
      const file = valuesFile(values);
      for (const args of [['lint', '--strict', CHART, '-f', file], ['template', RELEASE, CHART, '-f', file]]) {
        const result = helm(args);
        expect(result.status).not.toBe(0);
        expect(result.stderr + result.stdout).toMatch(/additional properties '(replicaCount|resourcez|storageClass|runtimeClass|pathtype)' not allowed/);
      }
    }
    // And what weakens a pod's security is refused by the schema too.
    const rooted = helm(['template', RELEASE, CHART, '-f', valuesFile({ ...REQUIRED, securityContext: { allowPrivilegeEscalation: true, capabilities: { drop: ['ALL'] } } })]);
    expect(rooted.status).not.toBe(0);
  });

  it('refuses to render without PostgreSQL, Redis, the secret key or the executor image, saying what to set', () => {
    const cases: Array<[object, RegExp]> = [
      [{}, /PostgreSQL is required.*database\.url/],
      [{ ...REQUIRED, redis: { url: '' } }, /Redis is required.*redis\.url/],
      [{ ...REQUIRED, secretKey: { value: '' } }, /OH_SECRET_KEY.*secretKey\.value/],
      [{ ...REQUIRED, executorImage: { repository: '' } }, /executor image.*executorImage\.repository/],
    ];
    for (const [values, message] of cases) {
      const result = helm(['template', RELEASE, CHART, '-f', valuesFile(values)]);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(message);
    }
  });
});

describe('helm/berth: what it creates', () => {
  it('gives the service account a Role in the sandbox namespace with exactly the kubernetes driver’s rules, and nothing cluster-wide', () => {
    for (const [values, sandboxNamespace] of [
      [REQUIRED, NAMESPACE],
      [EXISTING_SECRETS, 'sandboxes'],
    ] as const) {
      const objects = render(values);
      expect(objects.filter((o) => /^Cluster/.test(o.kind))).toEqual([]);
      const role = only(objects, 'Role');
      expect(role.metadata.namespace).toBe(sandboxNamespace);
      expect(role.rules).toEqual([
        { apiGroups: [''], resources: ['pods', 'secrets', 'services', 'persistentvolumeclaims'], verbs: DRIVER_VERBS },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: DRIVER_VERBS },
      ]);
      const binding = only(objects, 'RoleBinding');
      expect(binding.metadata.namespace).toBe(sandboxNamespace);
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
      const account = only(objects, 'ServiceAccount');
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: NAMESPACE }]);
      for (const name of ['gateway', 'worker']) expect(podSpecOf(only(objects, 'Deployment', `${RELEASE}-berth-${name}`)).serviceAccountName).toBe(account.metadata.name);
    }
  });

  it('configures the kubernetes driver in a way Berth’s own loader accepts, its control-plane selector matching the gateway and worker pods', () => {
    for (const values of [REQUIRED, EXISTING_SECRETS, TEMPLATES]) {
      const objects = render(values);
      const data = only(objects, 'ConfigMap').data as Record<string, string>;
      const config = loadConfig({ ...data, DATABASE_URL: 'postgresql://x', REDIS_URL: 'redis://x', OH_SECRET_KEY: 'k' }, []);
      expect(config.sandboxDriver).toBe('kubernetes');
      const kube = config.kubernetes!;
      expect(kube.namespace).toBe((values as any).sandbox?.namespace ?? NAMESPACE);
      // Its objects carry the release's name; the sandboxes' policies admit the release's pods from their own namespace.
      expect(kube.instance).toBe(RELEASE);
      expect(kube.controlPlaneNamespace).toBe(kube.namespace === NAMESPACE ? null : NAMESPACE);
      for (const name of ['gateway', 'worker']) {
        const labels = only(objects, 'Deployment', `${RELEASE}-berth-${name}`).spec.template.metadata.labels;
        expect(labels).toMatchObject(kube.controlPlaneSelector);
      }
      // The migration Job's pods are not the control plane.
      expect(only(objects, 'Job').spec.template.metadata.labels).not.toMatchObject(kube.controlPlaneSelector);
      expect(Object.keys(kube.controlPlaneSelector).sort()).toEqual(['app.kubernetes.io/instance', 'app.kubernetes.io/name', 'berth.dev/control-plane']);
      if (values === TEMPLATES) {
        expect(kube.templates.default).toMatchObject({ image: 'registry.example/berth-executor:0.1.0', workspace: { type: 'emptyDir', size: '5Gi' }, warmPoolSize: 4 });
        expect(kube.templates.gvisor).toMatchObject({ runtimeClassName: 'gvisor', imagePullSecrets: ['regcred'], workspace: { type: 'pvc', size: '20Gi', storageClassName: 'fast' }, warmPoolSize: 1 });
        expect(kube.clusterCidrs).toEqual(['10.0.0.0/8', '172.20.0.0/16']);
        expect(kube.readyTimeoutMs).toBe(300000);
        // 0 is a value (the reconcile loop off), not an absent one.
        expect(config.sandboxReconcileMs).toBe(0);
      }
      if (values === EXISTING_SECRETS) expect(kube.templates.default.image).toBe(`registry.example/berth-executor@sha256:${'a'.repeat(64)}`);
    }
  });

  it('admits into sandbox pods only this release’s gateway and worker pods, on the executor’s port, and lets nothing out', () => {
    for (const [values, sandboxNamespace] of [
      [REQUIRED, NAMESPACE],
      [EXISTING_SECRETS, 'sandboxes'],
    ] as const) {
      const objects = render(values);
      const policy = only(objects, 'NetworkPolicy');
      expect(policy.metadata.namespace).toBe(sandboxNamespace);
      // The label the driver puts on every sandbox pod (libs/sandbox/src/kubernetes/manifests.ts).
      expect(policy.spec.podSelector).toEqual({ matchLabels: { 'app.kubernetes.io/managed-by': 'berth' } });
      expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(policy.spec.egress).toBeUndefined();
      expect(policy.spec.ingress).toHaveLength(1);
      const [rule] = policy.spec.ingress;
      expect(rule.ports).toEqual([{ protocol: 'TCP', port: EXECUTOR_PORT }]);
      expect(rule.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } }, podSelector: expect.any(Object) }]);
      for (const name of ['gateway', 'worker']) {
        expect(only(objects, 'Deployment', `${RELEASE}-berth-${name}`).spec.template.metadata.labels).toMatchObject(rule.from[0].podSelector.matchLabels);
      }
      expect(only(objects, 'Job').spec.template.metadata.labels).not.toMatchObject(rule.from[0].podSelector.matchLabels);
    }
  });

  it('probes /health and /ready on both Deployments, with a PDB each, the Service on the gateways', () => {
    const objects = render(REQUIRED);
    for (const name of ['gateway', 'worker']) {
      const deployment = only(objects, 'Deployment', `${RELEASE}-berth-${name}`);
      expect(deployment.spec.replicas).toBe(2);
      const [container] = podSpecOf(deployment).containers;
      expect(container.startupProbe.httpGet).toEqual({ path: '/health', port: 'http' });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
      expect(container.resources.requests).toEqual(expect.objectContaining({ cpu: expect.any(String), memory: expect.any(String) }));
      expect(container.args[0]).toBe(`/app/dist/apps/${name}/src/main.js`);
      expect(only(objects, 'PodDisruptionBudget', `${RELEASE}-berth-${name}`).spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
      // Inline values come from the chart's Secret.
      expect(envOf(container).DATABASE_URL.valueFrom.secretKeyRef).toEqual({ name: `${RELEASE}-berth`, key: 'DATABASE_URL' });
    }
    const service = only(objects, 'Service');
    expect(service.spec.selector).toEqual(only(objects, 'Deployment', `${RELEASE}-berth-gateway`).spec.selector.matchLabels);
    expect(objects.filter((o) => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'Ingress')).toEqual([]);
    const secret = only(objects, 'Secret', `${RELEASE}-berth`);
    expect(Object.keys(secret.data).sort()).toEqual(['DATABASE_URL', 'OH_SECRET_KEY', 'REDIS_URL']);
  });

  it('with autoscaling, Ingress TLS and existing Secrets: HPAs own the replica counts, TLS on the host, no Secret of its own', () => {
    const objects = render(EXISTING_SECRETS);
    for (const [name, min, max, metrics] of [
      ['gateway', 3, 12, ['cpu']],
      ['worker', 2, 20, ['cpu', 'memory']],
    ] as const) {
      const deployment = only(objects, 'Deployment', `${RELEASE}-berth-${name}`);
      expect(deployment.spec.replicas).toBeUndefined();
      const hpa = only(objects, 'HorizontalPodAutoscaler', `${RELEASE}-berth-${name}`);
      expect(hpa.spec).toMatchObject({ scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name }, minReplicas: min, maxReplicas: max });
      expect(hpa.spec.metrics.map((m: any) => m.resource.name)).toEqual(metrics);
      const env = envOf(podSpecOf(deployment).containers[0]);
      expect(env.DATABASE_URL.valueFrom.secretKeyRef).toEqual({ name: 'berth-db', key: 'app-url' });
      expect(env.REDIS_URL.valueFrom.secretKeyRef).toEqual({ name: 'berth-redis', key: 'url' });
      expect(env.OH_SECRET_KEY.valueFrom.secretKeyRef).toEqual({ name: 'berth-keys', key: 'OH_SECRET_KEY' });
      expect(env.OH_SESSION_API_KEYS.valueFrom.secretKeyRef).toEqual({ name: 'berth-keys', key: 'OH_SESSION_API_KEYS' });
      expect(env.BERTH_ADMIN_API_KEYS.valueFrom.secretKeyRef).toEqual({ name: 'berth-keys', key: 'BERTH_ADMIN_API_KEYS' });
      expect(podSpecOf(deployment).containers[0].image).toBe('registry.example/berth:1.2.3');
    }
    const ingress = only(objects, 'Ingress');
    expect(ingress.spec.ingressClassName).toBe('nginx');
    expect(ingress.spec.tls).toEqual([{ secretName: 'berth-tls', hosts: ['berth.example.com'] }]);
    expect(ingress.spec.rules).toEqual([
      { host: 'berth.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: only(objects, 'Service').metadata.name, port: { name: 'http' } } } }] } },
    ]);
    // Everything secret is in the operator's Secrets: the chart renders none.
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const job = only(objects, 'Job');
    expect(envOf(podSpecOf(job).containers[0]).DATABASE_URL.valueFrom.secretKeyRef).toEqual({ name: 'berth-db', key: 'owner-url' });
  });

  it('runs the migrations as a pre-install/pre-upgrade hook Job, its inline URL in a hook Secret made before it', () => {
    const objects = render(REQUIRED);
    const job = only(objects, 'Job');
    expect(job.metadata.annotations).toEqual({
      'helm.sh/hook': 'pre-install,pre-upgrade',
      'helm.sh/hook-weight': '0',
      'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
    });
    const spec = podSpecOf(job);
    expect(spec.restartPolicy).toBe('Never');
    // The release's ServiceAccount does not exist before install.
    expect(spec.serviceAccountName).toBeUndefined();
    expect(spec.containers[0].args).toEqual(['/app/scripts/migrate.js']);
    const secretRef = envOf(spec.containers[0]).DATABASE_URL.valueFrom.secretKeyRef;
    const hookSecret = only(objects, 'Secret', secretRef.name);
    expect(hookSecret.metadata.annotations).toEqual({
      'helm.sh/hook': 'pre-install,pre-upgrade',
      'helm.sh/hook-weight': '-10',
      'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
    });
    expect(Buffer.from(hookSecret.data[secretRef.key], 'base64').toString()).toBe(REQUIRED.database.url);
    // Turned off, neither is rendered.
    const off = render({ ...REQUIRED, migration: { enabled: false, database: { url: '', existingSecret: { name: '', key: 'DATABASE_URL' } } } });
    expect(off.filter((o) => o.kind === 'Job' || o.metadata.annotations?.['helm.sh/hook'])).toEqual([]);
  });

  it('prints NOTES that say how to reach the API, and warn when no API key is set', () => {
    const notes = (values: object) => {
      const result = helm(['install', RELEASE, CHART, '--namespace', NAMESPACE, '--dry-run=client', '-f', valuesFile(values)]);
      expect(result.status).toBe(0);
      return result.stdout.slice(result.stdout.indexOf('NOTES:'));
    };
    const open = notes(REQUIRED);
    expect(open).toContain(`kubectl --namespace ${NAMESPACE} port-forward service/${RELEASE}-berth 8000:80`);
    expect(open).toContain(`migrations: applied by the Job ${RELEASE}-berth-migrate`);
    expect(open).toMatch(/WARNING: no API key is configured/);
    const closed = notes(EXISTING_SECRETS);
    expect(closed).toContain('https://berth.example.com/');
    expect(closed).toContain('gateway: 3–12 (autoscaled)');
    expect(closed).toContain('namespace "sandboxes"');
    expect(closed).not.toMatch(/WARNING/);
  });
});

describe('the migration Job against PostgreSQL', () => {
  const admin = new Client({ connectionString: process.env.BERTH_TEST_ADMIN_URL });
  const suffix = `${process.pid}_${Date.now()}`;
  const role = `berth_app_${suffix}`;
  const databases = [`berth_helm_${suffix}`, `berth_helm_fresh_${suffix}`];
  const urlOf = (database: string, user?: string) => {
    const url = new URL(process.env.BERTH_TEST_ADMIN_URL as string);
    url.pathname = `/${database}`;
    if (user) url.username = user;
    return url.toString();
  };

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`CREATE ROLE "${role}" LOGIN`);
    for (const database of databases) {
      await admin.query(`CREATE DATABASE "${database}"`);
      // The application's role: it may connect and use the schema, never create in it.
      await admin.query(`GRANT CONNECT ON DATABASE "${database}" TO "${role}"`);
    }
  });

  afterAll(async () => {
    for (const database of databases) await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS "${role}"`);
    await admin.end();
  });

  it('applies the schema with the Job’s command, after which pods whose role has no DDL right start and are ready', async () => {
    const [database, fresh] = databases;
    const job = only(render({ ...REQUIRED, database: { url: urlOf(database) } }), 'Job');
    const [container] = podSpecOf(job).containers;
    // The image's entry point is node; /app is the repository's build output.
    const script = container.args[0].replace(/^\/app\//, `${ROOT}/`);
    const run = (url: string) => spawnSync(process.execPath, [script], { encoding: 'utf8', env: { PATH: process.env.PATH, DATABASE_URL: url } });
    const first = run(urlOf(database));
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.status).toBe(0);
    // A second run (the next upgrade) finds nothing to do.
    expect(run(urlOf(database)).status).toBe(0);

    const owner = new Client({ connectionString: urlOf(database) });
    await owner.connect();
    const { rows } = await owner.query(`SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL ORDER BY 1`);
    const migrations = readdirSync(join(ROOT, 'prisma/migrations'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
    expect(rows.map((r) => r.migration_name)).toEqual(migrations);
    await owner.query(`GRANT USAGE ON SCHEMA public TO "${role}"`);
    await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "${role}"`);
    await owner.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "${role}"`);
    await owner.end();

    const app = new Database({ databaseUrl: urlOf(database, role), dataDir: work, poolSize: 2 });
    await expect(app.ready).resolves.toBeUndefined();
    expect(app.isMigrated).toBe(true);
    await app.close();

    // The same role on a database nobody migrated cannot create the schema: it really has no DDL right.
    const unmigrated = new Database({ databaseUrl: urlOf(fresh, role), dataDir: work, poolSize: 2 });
    await expect(unmigrated.ready).rejects.toThrow(/permission denied/);
    await unmigrated.close();
    // And the Job without a DATABASE_URL says so.
    const bare = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/DATABASE_URL is required/);
  });
});

describe('deploy/Dockerfile (checked, since no Docker engine runs here)', () => {
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = dockerfile.split(/^FROM /m).slice(1).map((text) => ({ name: /^\S+ AS (\S+)/.exec(text)?.[1] as string, text }));
  const stage = (name: string) => stages.find((s) => s.name === name)!.text;
  const instructions = (text: string, keyword: string) => [...text.matchAll(new RegExp(`^${keyword} (.+)$`, 'gm'))].map((m) => m[1]);
  const execForm = (text: string, keyword: string) => JSON.parse(instructions(text, keyword)[0]) as string[];

  it('has the build, executor and (default, last) control-plane stages on node:24-bookworm-slim', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    expect(stages.map((s) => s.name)).toEqual(['manifests', 'build', 'executor', 'runtime']);
  });

  it('copies from the build context only what exists and what Dockerfile.dockerignore lets in', () => {
    const allowed = readFileSync(join(ROOT, 'deploy/Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1).replace(/\/$/, ''));
    const sources = stages.flatMap((s) => instructions(s.text, 'COPY')).filter((args) => !args.startsWith('--from')).flatMap((args) => args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect({ source, exists: existsSync(join(ROOT, source)), allowed: allowed.includes(source.split('/')[0]) }).toEqual({ source, exists: true, allowed: true });
    }
  });

  it('the control plane: what it copies from the build exists there, and it starts the gateway, worker and migrations under tini as 10001', () => {
    const text = stage('runtime');
    for (const args of instructions(text, 'COPY --from=build')) {
      const [source] = args.split(/\s+/);
      // /app is the build stage's checkout (here: the repository after `npm run build`); /out/libs is made by its RUN.
      if (source === '/out/libs') {
        expect(stage('build')).toContain('mkdir -p /out/libs');
        for (const lib of readdirSync(join(ROOT, 'libs'))) expect(existsSync(join(ROOT, 'libs', lib, 'index.js'))).toBe(true);
      } else {
        expect({ source, exists: existsSync(join(ROOT, source.replace(/^\/app\//, ''))) }).toEqual({ source, exists: true });
      }
    }
    expect(text).toMatch(/apt-get install [^\n]*\btini\b/);
    expect(instructions(text, 'USER')).toEqual([`${UID}:${UID}`]);
    expect(text).toContain(`useradd --uid ${UID} --gid ${UID}`);
    expect(execForm(text, 'ENTRYPOINT').slice(0, 3)).toEqual(['/usr/bin/tini', '--', 'node']);
    // The default command and every program the chart names are in the build output.
    const programs = [execForm(text, 'CMD')[0]];
    for (const o of render(REQUIRED).filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) programs.push(podSpecOf(o).containers[0].args[0]);
    expect(programs.sort()).toEqual(['/app/dist/apps/gateway/src/main.js', '/app/dist/apps/gateway/src/main.js', '/app/dist/apps/worker/src/main.js', '/app/scripts/migrate.js']);
    for (const program of programs) expect(existsSync(join(ROOT, program.replace(/^\/app\//, '')))).toBe(true);
  });

  it('the executor image holds only the executor’s runtime, which starts from it alone and answers /health', async () => {
    const text = stage('executor');
    expect(instructions(text, 'COPY')).toEqual(['--from=build /out/executor /app']);
    expect(stage('build')).toContain('node scripts/executor-bundle.js /out/executor');
    expect(text).toMatch(/apt-get install [^\n]*\btini\b[^\n]*\bgit\b/);
    expect(instructions(text, 'USER')).toEqual([`${UID}:${UID}`]);
    const entrypoint = execForm(text, 'ENTRYPOINT');
    expect(entrypoint).toEqual(['/usr/bin/tini', '--', 'node', '/app/dist/apps/executor/src/main.js']);

    const app = join(work, 'executor-image', 'app');
    const paths = bundle(app);
    // No LLM, database, Redis or Kubernetes client in it.
    expect(paths.filter((p) => p.startsWith('node_modules/'))).toEqual(['node_modules/ws', 'node_modules/zod']);
    expect(paths.filter((p) => p.startsWith('dist/')).sort()).toEqual(['dist/apps/executor', 'dist/libs/contracts']);
    // Started outside the repository (no node_modules above it) in its workspace, as the pod does.
    const workspace = join(work, 'executor-image', 'workspace');
    const executor = spawn(process.execPath, [entrypoint[3].replace(/^\/app\//, `${app}/`)], {
      cwd: join(work, 'executor-image'),
      env: { PATH: process.env.PATH, BERTH_SANDBOX_TOKEN: 'token', BERTH_SANDBOX_ROOT: workspace, BERTH_EXECUTOR_HOST: '127.0.0.1', BERTH_EXECUTOR_PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = await createInterface({ input: executor.stdout! })[Symbol.asyncIterator]().next().then((r) => [r.value as string]);
      const { port } = JSON.parse(line) as { port: number };
      const status = await new Promise<number>((resolve, reject) =>
        get({ host: '127.0.0.1', port, path: '/health' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject),
      );
      expect(status).toBe(200);
    } finally {
      const exited = new Promise((resolve) => executor.once('exit', resolve));
      executor.kill('SIGTERM');
      await exited;
    }
  });
});
