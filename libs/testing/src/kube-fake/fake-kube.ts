/* eslint-disable @typescript-eslint/no-explicit-any */
import { closeServer, readBody } from '../local-http';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import {
  KubeStatusError,
  ResourceName,
  alreadyExists,
  badRequest,
  conflict,
  expired,
  forbidden,
  invalid,
  methodNotAllowed,
  notFound,
  unauthorized,
  unsupportedMediaType,
} from './api-status';
import { Kubelet, KubeletOptions, RunningPod } from './kubelet';
import { parseFieldSelector, parseLabelSelector } from './label-selector';
import { restrictedViolation } from './pod-security';
import { FieldValidation, decodeAndValidate, validateMetadata } from './schema';

export type { RunningPod };

export type KubeObject = Record<string, any> & { metadata: Record<string, any> };

/** A kind the fake serves: where it lives, its kubernetes-models schema, how its names are checked. */
interface ResourceType {
  resource: string;
  group: string;
  version: string;
  kind: string;
  /** kubernetes-models `_schemas` definition */
  definition: string;
  nameRule: 'subdomain' | 'label';
  /** DELETE answers the object (else a Success Status), as the server's registry of the kind does */
  deleteReturnsObject: boolean;
}

const TYPES: ResourceType[] = [
  { resource: 'pods', group: '', version: 'v1', kind: 'Pod', definition: 'IoK8sApiCoreV1Pod', nameRule: 'subdomain', deleteReturnsObject: true },
  { resource: 'secrets', group: '', version: 'v1', kind: 'Secret', definition: 'IoK8sApiCoreV1Secret', nameRule: 'subdomain', deleteReturnsObject: false },
  { resource: 'services', group: '', version: 'v1', kind: 'Service', definition: 'IoK8sApiCoreV1Service', nameRule: 'label', deleteReturnsObject: true },
  { resource: 'persistentvolumeclaims', group: '', version: 'v1', kind: 'PersistentVolumeClaim', definition: 'IoK8sApiCoreV1PersistentVolumeClaim', nameRule: 'subdomain', deleteReturnsObject: true },
  {
    resource: 'networkpolicies',
    group: 'networking.k8s.io',
    version: 'v1',
    kind: 'NetworkPolicy',
    definition: 'IoK8sApiNetworkingV1NetworkPolicy',
    nameRule: 'subdomain',
    deleteReturnsObject: false,
  },
];

const apiVersionOf = (t: ResourceType) => (t.group ? `${t.group}/${t.version}` : t.version);

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface StoredEvent {
  rv: number;
  type: WatchEventType;
  resource: string;
  namespace: string;
  /** the object before (null when added) */
  old: KubeObject | null;
  object: KubeObject;
}

interface Watcher {
  resource: string;
  namespace: string | null;
  matches: (o: KubeObject) => boolean;
  send: (type: string, object: unknown) => void;
}

export interface FakeKubeOptions extends Partial<Omit<KubeletOptions, 'dataDir'>> {
  /** Pod volumes, logs and generated files live here (the caller removes it). */
  dataDir: string;
  /** Watch events kept for a watch from an older version; older ones answer 410 Expired (default 10000). */
  historyLimit?: number;
  /** How often a watch that allows bookmarks gets one (default 1000 ms; the client drops a watch silent for 30 s). */
  bookmarkIntervalMs?: number;
}

/**
 * A stand-in for a Kubernetes API server and its one node, for tests: the REST API that
 * @kubernetes/client-node speaks for core/v1 pods, secrets, services, persistentvolumeclaims and
 * networking.k8s.io/v1 networkpolicies (create, get, list, replace, merge-patch, delete, watch, with
 * one resourceVersion over all of them), every object decoded and validated against the Kubernetes
 * schemas (kubernetes-models) and pods admitted by the restricted Pod Security profile, answering
 * errors as the server's `Status` bodies. Its kubelet runs each pod's container as a local process
 * (see Kubelet). What it does not do: enforce NetworkPolicies (pods share the host's network), serve
 * other kinds or subresources, strategic-merge or JSON patches (415), authorization beyond one token.
 */
export class FakeKube {
  url = '';
  private server!: Server;
  private readonly token = randomBytes(24).toString('base64url');
  private readonly store = new Map<string, Map<string, KubeObject>>(TYPES.map((t) => [t.resource, new Map()]));
  private resourceVersion = 0;
  private history: StoredEvent[] = [];
  /** Versions up to this one are no longer in the history. */
  private compactedThrough = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly responses = new Set<ServerResponse>();
  private readonly kubelet: Kubelet;
  private readonly historyLimit: number;
  private readonly bookmarkIntervalMs: number;
  private clusterIPs = 0;

  private constructor(options: FakeKubeOptions) {
    this.historyLimit = options.historyLimit ?? 10_000;
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.kubelet = new Kubelet(
      {
        get: (resource, namespace, name) => this.store.get(resource)!.get(`${namespace}/${name}`),
        list: (resource, namespace) => [...this.store.get(resource)!.values()].filter((o) => o.metadata.namespace === namespace),
        updatePod: (namespace, name, uid, mutate) => this.updateInternal('pods', namespace, name, uid, mutate),
        removePod: (namespace, name, uid) => this.removeInternal('pods', namespace, name, uid),
      },
      { ...options, dataDir: options.dataDir },
    );
  }

  static async start(options: FakeKubeOptions): Promise<FakeKube> {
    const fake = new FakeKube(options);
    await fake.kubelet.prepare();
    fake.server = createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`;
    return fake;
  }

  /** A client configuration for this server (its bearer token, namespace `default`). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'berth', token: this.token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'berth', namespace: 'default' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The same as a kubeconfig file (KUBECONFIG, BERTH_K8S_KUBECONFIG). */
  writeKubeconfig(path: string): void {
    writeFileSync(path, this.kubeConfig().exportConfig(), { mode: 0o600 });
  }

  /** Pulls of this image fail (ErrImagePull, then ImagePullBackOff) until told otherwise. */
  failPulls(image: string, on = true): void {
    this.kubelet.failPulls(image, on);
  }

  /** No node takes new pods (PodScheduled False, Unschedulable) until turned off again. */
  unschedulable(on: boolean): void {
    this.kubelet.unschedulable(on);
  }

  /** Kills the pod's container (SIGKILL); resolves once its status says so. Its restart policy restarts it. */
  crashContainer(pod: string, namespace?: string): Promise<void> {
    return this.kubelet.crashContainer(this.podKey(pod, namespace));
  }

  /** From now on the pod's container dies at every start (CrashLoopBackOff). */
  crashLoop(pod: string, namespace?: string): Promise<void> {
    return this.kubelet.crashLoop(this.podKey(pod, namespace));
  }

  /** What runs: one entry per live container process. */
  pods(): RunningPod[] {
    return this.kubelet.running();
  }

  /** The host folder of a claim's volume (null: no such claim). */
  claimFolder(namespace: string, claim: string): string | null {
    const pvc = this.store.get('persistentvolumeclaims')!.get(`${namespace}/${claim}`);
    return pvc ? this.kubelet.claimFolder(pvc) : null;
  }

  /** A stored object as the server holds it (a copy), or undefined. */
  object(resource: string, namespace: string, name: string): KubeObject | undefined {
    const o = this.store.get(resource)?.get(`${namespace}/${name}`);
    return o && clone(o);
  }

  /** Every stored object of a kind in a namespace (copies). */
  objects(resource: string, namespace: string): KubeObject[] {
    return [...(this.store.get(resource)?.values() ?? [])].filter((o) => o.metadata.namespace === namespace).map(clone);
  }

  /** Forgets the watch history, as an etcd compaction does: a watch from any version before now answers 410. */
  compact(): void {
    this.history = [];
    this.compactedThrough = this.resourceVersion;
  }

  /** Kills every container (no pod outlives the server), ends the watches and stops listening. */
  async close(): Promise<void> {
    for (const res of this.responses) res.end();
    await this.kubelet.close();
    await closeServer(this.server);
  }

  private podKey(name: string, namespace?: string): { namespace: string; name: string } {
    const pods = [...this.store.get('pods')!.values()].filter((p) => p.metadata.name === name && (!namespace || p.metadata.namespace === namespace));
    if (pods.length !== 1) throw new Error(`no single pod named ${name}${namespace ? ` in ${namespace}` : ''}`);
    return { namespace: pods[0].metadata.namespace, name };
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) throw unauthorized();
      const url = new URL(req.url ?? '/', 'http://fake');
      if (url.pathname === '/version') return json(res, 200, { major: '1', minor: '30', gitVersion: 'v1.30.0-berth-fake', platform: 'linux/amd64' });
      const route = routeOf(url.pathname);
      if (!route) throw notFound({ resource: '', group: '', name: url.pathname });
      const { type, namespace, name } = route;
      const body = ['POST', 'PUT', 'PATCH'].includes(req.method ?? '') ? await readBody(req) : undefined;
      const query = url.searchParams;
      const fieldValidation = (query.get('fieldValidation') ?? 'Warn') as FieldValidation;
      if (!['Strict', 'Warn', 'Ignore'].includes(fieldValidation)) throw badRequest(`fieldValidation must be one of "Ignore", "Warn" or "Strict" (got ${JSON.stringify(fieldValidation)})`);
      const warnings: string[] = [];
      const reply = (code: number, object: unknown) => {
        if (warnings.length) res.setHeader('Warning', warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', '));
        json(res, code, object);
      };
      switch (req.method) {
        case 'GET':
          if (!name && ['true', '1'].includes(query.get('watch') ?? '')) return this.watch(type, namespace, query, req, res);
          if (!name) return reply(200, this.list(type, namespace, query));
          return reply(200, this.get(type, namespace!, name));
        case 'POST':
          if (name || !namespace) throw methodNotAllowed();
          return reply(201, this.create(type, namespace, parseJson(body!), fieldValidation, warnings));
        case 'PUT':
          if (!name || !namespace) throw methodNotAllowed();
          return reply(200, this.replace(type, namespace, name, parseJson(body!), fieldValidation, warnings));
        case 'PATCH': {
          if (!name || !namespace) throw methodNotAllowed();
          const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim();
          if (contentType !== 'application/merge-patch+json') throw unsupportedMediaType(contentType);
          return reply(200, this.mergePatch(type, namespace, name, parseJson(body!), fieldValidation, warnings));
        }
        case 'DELETE': {
          if (!name || !namespace) throw methodNotAllowed();
          const options = body === undefined ? await readBody(req).then((text) => (text ? parseJson(text) : {})) : {};
          return reply(200, this.delete(type, namespace, name, query, options));
        }
        default:
          throw methodNotAllowed();
      }
    } catch (err) {
      if (err instanceof KubeStatusError) return json(res, err.status.code, err.status);
      json(res, 500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: (err as Error).message, reason: 'InternalError', code: 500 });
    }
  }

  // ---- the API ----

  private get(type: ResourceType, namespace: string, name: string): KubeObject {
    const o = this.store.get(type.resource)!.get(`${namespace}/${name}`);
    if (!o) throw notFound({ resource: type.resource, group: type.group, name });
    return withType(type, o);
  }

  private list(type: ResourceType, namespace: string | null, query: URLSearchParams): unknown {
    const labels = parseLabelSelector(query.get('labelSelector'));
    const fields = parseFieldSelector(query.get('fieldSelector'));
    const items = [...this.store.get(type.resource)!.values()]
      .filter((o) => (!namespace || o.metadata.namespace === namespace) && labels(o.metadata.labels) && fields(o))
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    // A list's items carry no kind and apiVersion: the list has them.
    return { kind: `${type.kind}List`, apiVersion: apiVersionOf(type), metadata: { resourceVersion: String(this.resourceVersion) }, items: items.map(clone) };
  }

  private create(type: ResourceType, namespace: string, body: any, fieldValidation: FieldValidation, warnings: string[]): KubeObject {
    const object = this.decode(type, namespace, body, fieldValidation, warnings);
    const meta = object.metadata;
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    const r = { resource: type.resource, group: type.group, name: meta.name ?? '' };
    validateMetadata(meta, type.nameRule, type.kind, r);
    const key = `${namespace}/${meta.name}`;
    if (this.store.get(type.resource)!.has(key)) throw alreadyExists(r);
    if (type.kind === 'Pod') {
      const violation = restrictedViolation(object);
      if (violation) throw forbidden(r, violation);
    }
    for (const field of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds']) delete meta[field];
    Object.assign(meta, { namespace, uid: randomUUID(), creationTimestamp: now() });
    this.defaults(type, object);
    const stored = this.write('ADDED', type, namespace, null, object);
    if (type.kind === 'Pod') this.kubelet.podAdded(stored);
    if (type.kind === 'PersistentVolumeClaim') {
      this.kubelet.claimAdded(stored);
      this.kubelet.syncAll();
    }
    if (type.kind === 'Secret') this.kubelet.syncAll();
    return withType(type, stored);
  }

  /** What the server sets on a new object that the client left out. */
  private defaults(type: ResourceType, o: KubeObject): void {
    if (type.kind === 'Pod') {
      const spec = o.spec;
      spec.restartPolicy ??= 'Always';
      spec.dnsPolicy ??= 'ClusterFirst';
      spec.schedulerName ??= 'default-scheduler';
      spec.terminationGracePeriodSeconds ??= 30;
      spec.securityContext ??= {};
      spec.serviceAccountName ??= 'default';
      spec.serviceAccount = spec.serviceAccountName;
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        c.terminationMessagePath ??= '/dev/termination-log';
        c.terminationMessagePolicy ??= 'File';
        c.imagePullPolicy ??= /:latest$|^[^:]+$/.test(c.image ?? '') ? 'Always' : 'IfNotPresent';
        for (const p of c.ports ?? []) p.protocol ??= 'TCP';
      }
      o.status = { phase: 'Pending', qosClass: qosClass(spec.containers) };
    }
    if (type.kind === 'Secret') o.type ??= 'Opaque';
    if (type.kind === 'PersistentVolumeClaim') {
      o.spec.storageClassName ??= 'standard';
      o.spec.volumeMode ??= 'Filesystem';
      o.spec.volumeName = `pvc-${o.metadata.uid}`;
      o.status = { phase: 'Bound', accessModes: o.spec.accessModes, capacity: { storage: o.spec.resources?.requests?.storage } };
    }
    if (type.kind === 'Service') {
      const spec = o.spec;
      spec.type ??= 'ClusterIP';
      this.clusterIPs++;
      spec.clusterIP ??= `10.96.${(this.clusterIPs >> 8) & 255}.${this.clusterIPs & 255}`;
      spec.clusterIPs = [spec.clusterIP];
      spec.sessionAffinity ??= 'None';
      spec.ipFamilies ??= ['IPv4'];
      spec.ipFamilyPolicy ??= 'SingleStack';
      for (const p of spec.ports ?? []) {
        p.protocol ??= 'TCP';
        p.targetPort ??= p.port;
      }
      o.status = { loadBalancer: {} };
    }
    if (type.kind === 'NetworkPolicy') {
      o.spec.policyTypes ??= o.spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
    }
  }

  /**
   * Decodes a body of the kind (apiVersion and kind must match, the namespace too if given),
   * validated against its schema; a Secret's stringData is folded into base64 data.
   */
  private decode(type: ResourceType, namespace: string, body: any, fieldValidation: FieldValidation, warnings: string[]): KubeObject {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body of the request was not a JSON object');
    const name = body.metadata?.name ?? '';
    const r = { resource: type.resource, group: type.group, name };
    if (body.kind !== undefined && body.kind !== type.kind) throw badRequest(`the kind in the data (${body.kind}) does not match the expected kind (${type.kind})`);
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(type)) {
      throw badRequest(`the API version in the data (${body.apiVersion}) does not match the expected API version (${apiVersionOf(type)})`);
    }
    const object = clone({ ...body, apiVersion: apiVersionOf(type), kind: type.kind, metadata: body.metadata ?? {} }) as KubeObject;
    warnings.push(...decodeAndValidate(object, type.definition, type.kind, apiVersionOf(type), r, fieldValidation));
    if (object.metadata.namespace && object.metadata.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (type.kind === 'Secret') foldStringData(object, type, r);
    // Empty maps are not stored (omitempty): a merge patch removing the last label leaves none.
    for (const field of ['labels', 'annotations']) if (object.metadata[field] && !Object.keys(object.metadata[field]).length) delete object.metadata[field];
    return object;
  }

  private replace(type: ResourceType, namespace: string, name: string, body: any, fieldValidation: FieldValidation, warnings: string[]): KubeObject {
    const r = { resource: type.resource, group: type.group, name };
    const current = this.store.get(type.resource)!.get(`${namespace}/${name}`);
    if (!current) throw notFound(r);
    const object = this.decode(type, namespace, body, fieldValidation, warnings);
    if (object.metadata.name !== name) throw badRequest(`the name of the object (${object.metadata.name}) does not match the name on the URL (${name})`);
    return this.update(type, current, object, r);
  }

  private mergePatch(type: ResourceType, namespace: string, name: string, patch: any, fieldValidation: FieldValidation, warnings: string[]): KubeObject {
    const r = { resource: type.resource, group: type.group, name };
    const current = this.store.get(type.resource)!.get(`${namespace}/${name}`);
    if (!current) throw notFound(r);
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) throw badRequest('a merge patch must be a JSON object');
    const merged = mergePatch(withType(type, current), patch);
    const object = this.decode(type, namespace, merged, fieldValidation, warnings);
    return this.update(type, current, object, r);
  }

  /** An update: conditional on the resourceVersion the object carries (if any); what the server owns is kept. */
  private update(type: ResourceType, current: KubeObject, object: KubeObject, r: ResourceName): KubeObject {
    const meta = object.metadata;
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== current.metadata.resourceVersion) throw conflict(r);
    if (meta.uid !== undefined && meta.uid !== current.metadata.uid) throw conflict(r);
    validateMetadata(meta, type.nameRule, type.kind, r);
    for (const field of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'namespace']) {
      if (current.metadata[field] === undefined) delete meta[field];
      else meta[field] = current.metadata[field];
    }
    // The status belongs to the status subresource (the kubelet, the controllers): an update of the object keeps it.
    if (current.status !== undefined) object.status = current.status;
    else delete object.status;
    if (type.kind === 'Pod') checkPodUpdate(current, object, r);
    if (type.kind === 'PersistentVolumeClaim' || type.kind === 'Service') object.spec = { ...current.spec, ...pick(object.spec, type.kind === 'Service' ? ['ports', 'selector'] : ['resources']) };
    const stored = this.write('MODIFIED', type, current.metadata.namespace, current, object);
    if (type.kind === 'Secret') this.kubelet.syncAll();
    return withType(type, stored);
  }

  private delete(type: ResourceType, namespace: string, name: string, query: URLSearchParams, options: any): unknown {
    const r = { resource: type.resource, group: type.group, name };
    const current = this.store.get(type.resource)!.get(`${namespace}/${name}`);
    if (!current) throw notFound(r);
    const preconditions = options?.preconditions ?? {};
    if ((preconditions.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) || (preconditions.uid && preconditions.uid !== current.metadata.uid)) {
      throw conflict(r);
    }
    const success = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, ...(type.group ? { group: type.group } : {}), kind: type.resource, uid: current.metadata.uid } };
    if (type.kind === 'Pod') {
      const rawGrace = query.get('gracePeriodSeconds') ?? options?.gracePeriodSeconds;
      const grace = rawGrace === undefined || rawGrace === null ? current.spec.terminationGracePeriodSeconds : Number(rawGrace);
      if (current.metadata.deletionTimestamp) return withType(type, current);
      // A pod with nothing running (never scheduled) or no grace goes at once; the kubelet kills what is left.
      if (grace <= 0 || !current.spec.nodeName) {
        const gone = this.removeInternal('pods', namespace, name, current.metadata.uid)!;
        return withType(type, gone);
      }
      const deleting = this.updateInternal('pods', namespace, name, current.metadata.uid, (pod) => {
        pod.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
        pod.metadata.deletionGracePeriodSeconds = grace;
      })!;
      this.kubelet.podDeleting(deleting, grace);
      return withType(type, deleting);
    }
    if (type.kind === 'PersistentVolumeClaim') {
      // kubernetes.io/pvc-protection: a claim a pod still uses stays (Terminating) until the pod is gone.
      if (this.kubelet.claimInUse(namespace, name)) {
        const deleting = this.updateInternal(type.resource, namespace, name, current.metadata.uid, (pvc) => {
          pvc.metadata.deletionTimestamp ??= now();
          pvc.metadata.finalizers = ['kubernetes.io/pvc-protection'];
        })!;
        return withType(type, deleting);
      }
      const gone = this.removeInternal(type.resource, namespace, name, current.metadata.uid)!;
      return withType(type, gone);
    }
    const gone = this.removeInternal(type.resource, namespace, name, current.metadata.uid)!;
    return type.deleteReturnsObject ? withType(type, gone) : success;
  }

  // ---- the store ----

  private write(type: WatchEventType, t: ResourceType, namespace: string, old: KubeObject | null, object: KubeObject): KubeObject {
    object.metadata.resourceVersion = String(++this.resourceVersion);
    if (old === null || JSON.stringify(old.spec) !== JSON.stringify(object.spec)) object.metadata.generation = (old?.metadata.generation ?? 0) + 1;
    else object.metadata.generation = old.metadata.generation;
    delete object.kind;
    delete object.apiVersion;
    this.store.get(t.resource)!.set(`${namespace}/${object.metadata.name}`, object);
    this.emit({ rv: this.resourceVersion, type, resource: t.resource, namespace, old, object });
    return object;
  }

  /** A change made by the fake itself (the kubelet, a finalizer): null when the object (that uid) is gone. */
  private updateInternal(resource: string, namespace: string, name: string, uid: string, mutate: (o: KubeObject) => void): KubeObject | null {
    const current = this.store.get(resource)!.get(`${namespace}/${name}`);
    if (!current || current.metadata.uid !== uid) return null;
    const next = clone(current);
    mutate(next);
    const before = JSON.stringify(current);
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (JSON.stringify(next) === before) return current;
    return this.write('MODIFIED', typeOf(resource), namespace, current, next);
  }

  private removeInternal(resource: string, namespace: string, name: string, uid: string): KubeObject | null {
    const map = this.store.get(resource)!;
    const current = map.get(`${namespace}/${name}`);
    if (!current || current.metadata.uid !== uid) return null;
    map.delete(`${namespace}/${name}`);
    const gone = clone(current);
    gone.metadata.resourceVersion = String(++this.resourceVersion);
    this.emit({ rv: this.resourceVersion, type: 'DELETED', resource, namespace, old: current, object: gone });
    if (resource === 'pods') {
      this.kubelet.podRemoved(current);
      // Claims waiting for their pods to go (pvc-protection) may go now.
      for (const pvc of this.store.get('persistentvolumeclaims')!.values()) {
        if (pvc.metadata.deletionTimestamp && !this.kubelet.claimInUse(pvc.metadata.namespace, pvc.metadata.name)) {
          this.removeInternal('persistentvolumeclaims', pvc.metadata.namespace, pvc.metadata.name, pvc.metadata.uid);
        }
      }
    }
    if (resource === 'persistentvolumeclaims') this.kubelet.claimRemoved(current);
    return gone;
  }

  private emit(event: StoredEvent): void {
    this.history.push(event);
    if (this.history.length > this.historyLimit) this.compactedThrough = this.history.shift()!.rv;
    for (const watcher of this.watchers) deliver(watcher, event);
  }

  private watch(type: ResourceType, namespace: string | null, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const labels = parseLabelSelector(query.get('labelSelector'));
    const fields = parseFieldSelector(query.get('fieldSelector'));
    const rawVersion = query.get('resourceVersion') ?? '';
    const from = rawVersion === '' || rawVersion === '0' ? null : Number(rawVersion);
    if (from !== null && !Number.isInteger(from)) throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rawVersion)}: must be a number`);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const send = (eventType: string, object: unknown) => res.write(`${JSON.stringify({ type: eventType, object })}\n`);
    if (from !== null && from < this.compactedThrough) {
      // As the watch cache does: the watch starts, then ends with an ERROR event carrying 410 Expired.
      send('ERROR', expired(from, this.compactedThrough + 1).status);
      res.end();
      return;
    }
    const watcher: Watcher = {
      resource: type.resource,
      namespace,
      matches: (o) => labels(o.metadata.labels) && fields(o),
      send: (eventType, object) => send(eventType, object),
    };
    if (from === null) {
      // No version: the current state as ADDED events, then what changes.
      for (const o of this.store.get(type.resource)!.values()) if ((!namespace || o.metadata.namespace === namespace) && watcher.matches(o)) send('ADDED', withType(type, o));
    } else {
      for (const event of this.history) if (event.rv > from) deliver(watcher, event);
    }
    this.watchers.add(watcher);
    this.responses.add(res);
    const bookmarks =
      query.get('allowWatchBookmarks') === 'true'
        ? setInterval(() => send('BOOKMARK', { kind: type.kind, apiVersion: apiVersionOf(type), metadata: { resourceVersion: String(this.resourceVersion) } }), this.bookmarkIntervalMs)
        : undefined;
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? 0);
    const timeout = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
    const stop = () => {
      clearInterval(bookmarks);
      clearTimeout(timeout);
      this.watchers.delete(watcher);
      this.responses.delete(res);
    };
    req.on('close', stop);
    res.on('close', stop);
  }
}

/**
 * The event a watcher sees: a change that moves an object into its selection is ADDED, out of it
 * DELETED, within it MODIFIED (as the server's watch filtering does).
 */
function deliver(watcher: Watcher, event: StoredEvent): void {
  if (event.resource !== watcher.resource || (watcher.namespace && event.namespace !== watcher.namespace)) return;
  const type = typeOf(event.resource);
  const now = watcher.matches(event.object);
  const before = event.old !== null && watcher.matches(event.old);
  if (event.type === 'DELETED') return before ? watcher.send('DELETED', withType(type, event.object)) : undefined;
  if (now && before) return watcher.send('MODIFIED', withType(type, event.object));
  if (now) return watcher.send('ADDED', withType(type, event.object));
  if (before) return watcher.send('DELETED', withType(type, event.object));
}

function routeOf(path: string): { type: ResourceType; namespace: string | null; name: string | null } | null {
  const m = /^\/(?:api\/v1|apis\/([a-z0-9.-]+)\/(v[0-9a-z]+))(?:\/namespaces\/([^/]+))?\/([a-z]+)(?:\/([^/]+))?\/?$/.exec(path);
  if (!m) return null;
  const [, group = '', version = 'v1', namespace, resource, name] = m;
  const type = TYPES.find((t) => t.resource === resource && t.group === group && t.version === version);
  if (!type) return null;
  if (name && !namespace) return null;
  return { type, namespace: namespace ? decodeURIComponent(namespace) : null, name: name ? decodeURIComponent(name) : null };
}

function typeOf(resource: string): ResourceType {
  return TYPES.find((t) => t.resource === resource)!;
}

/** The object as the server answers it: with its kind and apiVersion first. */
function withType(type: ResourceType, o: KubeObject): KubeObject {
  return { apiVersion: apiVersionOf(type), kind: type.kind, ...clone(o) };
}

function clone<T>(o: T): T {
  return structuredClone(o);
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function pick(o: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => o && o[k] !== undefined).map((k) => [k, o![k]]));
}

/** RFC 7386: objects merge, null removes, anything else replaces. */
export function mergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** As the server stores a Secret: `stringData` written over `data`, base64-encoded, and dropped. */
function foldStringData(secret: KubeObject, type: ResourceType, r: ResourceName): void {
  const data: Record<string, string> = { ...(secret.data ?? {}) };
  for (const [key, value] of Object.entries((secret.stringData ?? {}) as Record<string, string>)) data[key] = Buffer.from(value, 'utf8').toString('base64');
  delete secret.stringData;
  const errors = Object.entries(data).flatMap(([key, value]) => [
    ...(SECRET_KEY.test(key) ? [] : [{ field: `data[${key}]`, type: 'FieldValueInvalid' as const, detail: `Invalid value: ${JSON.stringify(key)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'` }]),
    ...(BASE64.test(value) && value.length % 4 === 0 ? [] : [{ field: `data[${key}]`, type: 'FieldValueInvalid' as const, detail: 'Invalid value: "<secret contents redacted>": illegal base64 data' }]),
  ]);
  if (errors.length) throw invalid(type.kind, r, errors);
  if (Object.keys(data).length) secret.data = data;
  else delete secret.data;
}

/** A pod's spec is immutable but for its images, activeDeadlineSeconds and added tolerations. */
function checkPodUpdate(current: KubeObject, next: KubeObject, r: ResourceName): void {
  const mutable = (spec: any) => ({
    ...spec,
    containers: spec.containers?.map((c: any) => ({ ...c, image: undefined })),
    initContainers: spec.initContainers?.map((c: any) => ({ ...c, image: undefined })),
    activeDeadlineSeconds: undefined,
    tolerations: undefined,
  });
  if (JSON.stringify(mutable(current.spec)) !== JSON.stringify(mutable({ ...current.spec, ...next.spec, nodeName: next.spec?.nodeName ?? current.spec.nodeName }))) {
    throw invalid('Pod', r, [
      {
        field: 'spec',
        type: 'FieldValueForbidden',
        detail:
          'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      },
    ]);
  }
}

function qosClass(containers: any[]): string {
  const all = containers.map((c) => c.resources ?? {});
  if (all.every((r) => !Object.keys(r.requests ?? {}).length && !Object.keys(r.limits ?? {}).length)) return 'BestEffort';
  const guaranteed = all.every((r) => ['cpu', 'memory'].every((k) => r.limits?.[k] && (r.requests?.[k] ?? r.limits[k]) === r.limits[k]));
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
