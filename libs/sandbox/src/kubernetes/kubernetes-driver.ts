import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, KubeConfig, NetworkingV1Api, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import type { V1ObjectMeta, V1Pod } from '@kubernetes/client-node';
import type { KubernetesConfig, KubernetesTemplate } from '@berth/config';
import { sandboxProvisionDuration } from '@berth/metrics';
import { ExecutorClient } from '../executor-client';
import { KubernetesSandboxHandle, POD_WORKSPACE, SandboxDriver, SandboxError, SandboxHandle, SandboxSpec, SandboxStatus } from '../sandbox-driver';
import {
  EXECUTOR_PORT,
  LABEL,
  MANAGED_BY,
  NetworkRules,
  SlotSpec,
  UNCLAIMED,
  initBody,
  labelValue,
  networkPolicyManifest,
  podManifest,
  secretManifest,
  volumeClaimManifest,
} from './manifests';
import { podVerdict, waitForPod } from './pod-readiness';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** A field the server does not know fails the write (its default drops it with a warning: a typo would go unnoticed). */
const STRICT = 'Strict';

export interface KubernetesDriverOptions {
  config: KubernetesConfig;
  /** A sandbox's network when its spec names none. */
  defaultNetwork: 'none' | 'egress';
  /** Overrides the KUBECONFIG / in-cluster configuration (tests). */
  kubeConfig?: KubeConfig;
}

/**
 * Sandboxes as pods of a Kubernetes cluster: per sandbox a pod (the executor, reached by its pod IP),
 * a Secret (its token and variables), a PVC (its workspace, kept while it is paused) and a
 * NetworkPolicy. Every object carries the `berth.dev/*` labels, so any replica — or a later process —
 * finds what belongs to a sandbox from the cluster alone. A warm pool per template keeps pods
 * started ahead; a claim takes one by a conditional label patch, so two replicas never take the same.
 */
export class KubernetesSandboxDriver extends SandboxDriver {
  readonly kind = 'kubernetes' as const;
  private readonly core: CoreV1Api;
  private readonly net: NetworkingV1Api;
  private readonly watch: Watch;
  private readonly namespace: string;
  private readonly closing = new AbortController();
  /** Starts in progress by sandbox id: concurrent ensureRunning calls share one. */
  private readonly starting = new Map<string, Promise<KubernetesSandboxHandle>>();
  /** Refills in progress by template. */
  private readonly refilling = new Map<string, Promise<void>>();
  private warming = false;

  constructor(private readonly options: KubernetesDriverOptions) {
    super();
    const kc = options.kubeConfig ?? new KubeConfig();
    if (!options.kubeConfig) {
      if (options.config.kubeconfig) kc.loadFromFile(options.config.kubeconfig);
      else kc.loadFromCluster();
    }
    this.core = kc.makeApiClient(CoreV1Api);
    this.net = kc.makeApiClient(NetworkingV1Api);
    this.watch = new Watch(kc);
    this.namespace = options.config.namespace;
  }

  private get closed(): boolean {
    return this.closing.signal.aborted;
  }

  private template(name = 'default'): KubernetesTemplate {
    const template = this.options.config.templates[name];
    if (!template) throw new SandboxError(`No sandbox template ${JSON.stringify(name)}`);
    return template;
  }

  private slotOf(name: string, template: KubernetesTemplate, sandboxId: string, tenantId: string, pool: SlotSpec['pool']): SlotSpec {
    return { slot: name, namespace: this.namespace, instance: this.options.config.instance, template, sandboxId, tenantId, pool };
  }

  /** A label selector of this installation's objects with the given labels. */
  private selector(labels: Record<string, string>): string {
    return Object.entries({ [LABEL.managedBy]: MANAGED_BY, [LABEL.instance]: this.options.config.instance, ...labels })
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
  }

  private rules(spec: Pick<SandboxSpec, 'network' | 'egressCidrs'>): NetworkRules {
    const network = spec.network ?? this.options.defaultNetwork;
    return {
      network,
      controlPlaneSelector: this.options.config.controlPlaneSelector,
      controlPlaneNamespace: this.options.config.controlPlaneNamespace,
      clusterCidrs: this.options.config.clusterCidrs,
      egressCidrs: network === 'egress' ? (spec.egressCidrs ?? []) : [],
    };
  }

  async provision(spec: SandboxSpec): Promise<SandboxHandle> {
    if (this.closed) throw new SandboxError('The sandbox driver is closed');
    if (!UUID.test(spec.id)) throw new SandboxError(`A sandbox id must be a uuid (got ${JSON.stringify(spec.id)})`);
    const provisioned = sandboxProvisionDuration.startTimer({ driver: this.kind });
    const template = this.template();
    const claimed = await this.claimWarm(template, spec);
    this.refill(template);
    if (claimed) {
      provisioned({ pool: 'warm' });
      return claimed;
    }
    const slot = this.slotOf(`berth-${spec.id}`, template, spec.id, spec.tenantId ?? UNCLAIMED, 'claimed');
    const token = randomBytes(32).toString('base64url');
    const started = await this.startSlot(slot, token, initBody(spec.env ?? {}), this.rules(spec));
    provisioned({ pool: 'cold' });
    return started;
  }

  /** Creates a pod's Secret, workspace and NetworkPolicy (each kept if it exists) and the pod, and waits for it. */
  private async startSlot(slot: SlotSpec, token: string, init: string | null, rules: NetworkRules): Promise<KubernetesSandboxHandle> {
    const namespace = slot.namespace;
    await this.createIfAbsent(() => this.core.createNamespacedSecret({ namespace, body: secretManifest(slot, token, init), fieldValidation: STRICT }));
    if (slot.template.workspace.type === 'pvc') await this.createIfAbsent(() => this.core.createNamespacedPersistentVolumeClaim({ namespace, body: volumeClaimManifest(slot), fieldValidation: STRICT }));
    await this.createIfAbsent(() => this.net.createNamespacedNetworkPolicy({ namespace, body: networkPolicyManifest(slot, rules), fieldValidation: STRICT }));
    const created = await this.createPod(slot);
    const podIP = await this.podReady(created);
    return this.handleOf(slot, token, podIP);
  }

  private handleOf(slot: SlotSpec, token: string, podIP: string): KubernetesSandboxHandle {
    return {
      driver: 'kubernetes',
      id: slot.sandboxId,
      url: `http://${podIP}:${EXECUTOR_PORT}`,
      token,
      namespace: slot.namespace,
      pod: slot.slot,
      secret: slot.slot,
      volume: slot.template.workspace.type === 'pvc' ? slot.slot : null,
      template: slot.template.name,
    };
  }

  /** Creates the pod, or reads the one a concurrent start (another replica) made. */
  private async createPod(slot: SlotSpec): Promise<V1Pod> {
    try {
      return await this.core.createNamespacedPod({ namespace: slot.namespace, body: podManifest(slot), fieldValidation: STRICT });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      return this.core.readNamespacedPod({ namespace: slot.namespace, name: slot.slot });
    }
  }

  private podReady(pod: V1Pod): Promise<string> {
    const verdict = podVerdict(pod);
    if (verdict.ready) return Promise.resolve(verdict.podIP);
    if (verdict.failure) return Promise.reject(verdict.failure);
    const { namespace, name, resourceVersion } = pod.metadata ?? {};
    return waitForPod(this.watch, namespace as string, name as string, resourceVersion ?? '0', this.options.config.readyTimeoutMs, this.closing.signal);
  }

  private async createIfAbsent(create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }

  private async readPod(namespace: string, name: string): Promise<V1Pod | null> {
    try {
      return await this.core.readNamespacedPod({ namespace, name });
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw err;
    }
  }

  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    const h = this.mine(handle);
    const pod = await this.readPod(h.namespace, h.pod);
    if (!pod || pod.metadata?.deletionTimestamp) return 'stopped';
    const verdict = podVerdict(pod);
    return verdict.ready && h.url === `http://${verdict.podIP}:${EXECUTOR_PORT}` ? 'running' : 'error';
  }

  async ensureRunning(handle: SandboxHandle): Promise<SandboxHandle> {
    if (this.closed) throw new SandboxError('The sandbox driver is closed');
    const h = this.mine(handle);
    const pending = this.starting.get(h.id);
    if (pending) return pending;
    const start = this.restart(h).finally(() => this.starting.delete(h.id));
    this.starting.set(h.id, start);
    return start;
  }

  /** The running pod, waited for while its kubelet restarts the container; a pod gone is made again from the Secret. */
  private async restart(h: KubernetesSandboxHandle): Promise<KubernetesSandboxHandle> {
    const secret = await this.readSecret(h);
    if (!secret) throw new SandboxError(`Sandbox ${h.id} no longer exists in namespace ${h.namespace}`, 'Gone');
    const existing = await this.readPod(h.namespace, h.pod);
    const labels = existing?.metadata?.labels ?? secret.metadata?.labels ?? {};
    // owns() checked that the handle's namespace is this driver's.
    const slot = this.slotOf(h.pod, this.template(h.template), h.id, labels[LABEL.tenant] ?? UNCLAIMED, 'claimed');
    if (existing?.metadata?.deletionTimestamp) await this.goneAway(h.namespace, h.pod);
    const pod = existing && !existing.metadata?.deletionTimestamp ? existing : await this.createPod(slot);
    const podIP = await this.podReady(pod);
    return this.handleOf(slot, h.token, podIP);
  }

  private async readSecret(h: KubernetesSandboxHandle) {
    try {
      return await this.core.readNamespacedSecret({ namespace: h.namespace, name: h.secret });
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw err;
    }
  }

  /** Waits until a pod being deleted is gone (its name is taken until then). */
  private async goneAway(namespace: string, name: string): Promise<void> {
    const pod = await this.readPod(namespace, name);
    if (!pod) return;
    await new Promise<void>((resolve, reject) => {
      let controller: AbortController | undefined;
      const timer = setTimeout(() => {
        controller?.abort();
        reject(new SandboxError(`Pod ${name} was not deleted within ${this.options.config.readyTimeoutMs} ms`, 'DeleteTimeout'));
      }, this.options.config.readyTimeoutMs);
      const done = () => {
        clearTimeout(timer);
        controller?.abort();
        resolve();
      };
      this.watch
        .watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: `${LABEL.slot}=${name}`, resourceVersion: pod.metadata?.resourceVersion }, (phase) => phase === 'DELETED' && done(), () => undefined)
        .then((c) => (controller = c), reject);
    });
  }

  owns(handle: SandboxHandle): boolean {
    return handle.driver === 'kubernetes' && handle.namespace === this.namespace && !!this.options.config.templates[handle.template];
  }

  private mine(handle: SandboxHandle): KubernetesSandboxHandle {
    if (!this.owns(handle) || handle.driver !== 'kubernetes') throw new SandboxError(`Sandbox ${handle.id} is not one of this driver's pods`);
    return handle;
  }

  /** Pause: the pod goes; its Secret and PVC stay, and resume makes the pod again on them. */
  async stop(handle: SandboxHandle): Promise<void> {
    const h = this.mine(handle);
    await this.deleteIgnoringMissing(() => this.core.deleteNamespacedPod({ namespace: h.namespace, name: h.pod, gracePeriodSeconds: 5 }));
    await this.goneAway(h.namespace, h.pod);
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const h = this.mine(handle);
    await this.removeSlot(h.namespace, h.pod);
  }

  /** Deletes a pod and everything made for it (all named after the pod). */
  private async removeSlot(namespace: string, name: string): Promise<void> {
    await this.deleteIgnoringMissing(() => this.core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }));
    await Promise.all([
      this.deleteIgnoringMissing(() => this.core.deleteNamespacedSecret({ namespace, name })),
      this.deleteIgnoringMissing(() => this.core.deleteNamespacedPersistentVolumeClaim({ namespace, name })),
      this.deleteIgnoringMissing(() => this.net.deleteNamespacedNetworkPolicy({ namespace, name })),
      this.deleteIgnoringMissing(() => this.core.deleteNamespacedService({ namespace, name })),
    ]);
  }

  private async deleteIgnoringMissing(remove: () => Promise<unknown>): Promise<void> {
    try {
      await remove();
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
  }

  /**
   * What the namespace holds by label: pods, and whatever else is made per pod — a paused sandbox
   * has no pod, and a removal cut short may have left only some of the rest.
   */
  private async labelled(labelSelector: string): Promise<{ pods: V1Pod[]; all: Array<{ metadata?: V1ObjectMeta }> }> {
    const namespace = this.namespace;
    const [pods, secrets, claims, policies] = await Promise.all([
      this.core.listNamespacedPod({ namespace, labelSelector }),
      this.core.listNamespacedSecret({ namespace, labelSelector }),
      this.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector }),
      this.net.listNamespacedNetworkPolicy({ namespace, labelSelector }),
    ]);
    return { pods: pods.items, all: [...pods.items, ...secrets.items, ...claims.items, ...policies.items] };
  }

  /** Every claimed sandbox of this namespace: running or failed by its pod, stopped without one. */
  async inventory(): Promise<Array<{ sandboxId: string; state: 'running' | 'stopped' | 'error'; reason?: string }>> {
    const { pods, all } = await this.labelled(this.selector({ [LABEL.pool]: 'claimed' }));
    const podBySandbox = new Map(pods.map((pod) => [pod.metadata?.labels?.[LABEL.sandbox] ?? '', pod]));
    const ids = new Set(all.map((o) => o.metadata?.labels?.[LABEL.sandbox]).filter((id): id is string => !!id && id !== UNCLAIMED));
    return [...ids].map((sandboxId) => {
      const pod = podBySandbox.get(sandboxId);
      if (!pod) return { sandboxId, state: 'stopped' as const };
      const verdict = podVerdict(pod);
      if (verdict.ready) return { sandboxId, state: 'running' as const };
      return verdict.failure ? { sandboxId, state: 'error' as const, reason: verdict.failure.reason } : { sandboxId, state: 'running' as const };
    });
  }

  async removeOrphan(sandboxId: string): Promise<void> {
    const { all } = await this.labelled(this.selector({ [LABEL.sandbox]: sandboxId }));
    const slots = new Set(all.map((o) => o.metadata?.name).filter((n): n is string => !!n));
    for (const slot of slots) await this.removeSlot(this.namespace, slot);
  }

  /** Fills every template's warm pool (from now on it is refilled after each claim). */
  override warm(): void {
    if (this.closed) return;
    this.warming = true;
    for (const template of Object.values(this.options.config.templates)) this.refill(template);
  }

  /** Starts warm pods until the template has its pool size of live ones; broken ones are replaced. */
  private refill(template: KubernetesTemplate): void {
    if (!this.warming || this.closed || template.warmPoolSize === 0 || this.refilling.has(template.name)) return;
    const run = this.fillPool(template)
      .catch((err: Error) => console.error(`berth: warm pool ${template.name}: ${err.message}`))
      .finally(() => this.refilling.delete(template.name));
    this.refilling.set(template.name, run);
  }

  private async fillPool(template: KubernetesTemplate): Promise<void> {
    const { pods: listed, all } = await this.labelled(this.selector({ [LABEL.pool]: 'warm', [LABEL.template]: template.name }));
    const pods = listed.filter((pod) => !pod.metadata?.deletionTimestamp);
    let live = 0;
    for (const pod of pods) {
      const verdict = podVerdict(pod);
      if (!verdict.ready && verdict.failure) await this.removeSlot(this.namespace, pod.metadata?.name as string);
      else live++;
    }
    // A warm pod that went (evicted, deleted by hand) leaves its Secret, PVC and policy: removed once
    // older than a start may take, so a slot another replica is making right now is left alone.
    const withPod = new Set(listed.map((pod) => pod.metadata?.name));
    const staleBefore = Date.now() - this.options.config.readyTimeoutMs;
    const leftovers = new Set(all.filter((o) => !withPod.has(o.metadata?.name) && new Date(o.metadata?.creationTimestamp ?? Date.now()).getTime() < staleBefore).map((o) => o.metadata?.name as string));
    for (const name of leftovers) await this.removeSlot(this.namespace, name);
    const starts: Promise<unknown>[] = [];
    for (; live < template.warmPoolSize && !this.closed; live++) {
      const slot = this.slotOf(`berth-warm-${template.name}-${randomBytes(5).toString('hex')}`, template, UNCLAIMED, UNCLAIMED, 'warm');
      starts.push(this.startSlot(slot, randomBytes(32).toString('base64url'), null, this.rules({ network: 'none' })).catch(() => this.removeSlot(this.namespace, slot.slot)));
    }
    await Promise.all(starts);
  }

  private async warmPods(template: KubernetesTemplate): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({
      namespace: this.namespace,
      labelSelector: this.selector({ [LABEL.pool]: 'warm', [LABEL.template]: template.name }),
    });
    return list.items.filter((pod) => !pod.metadata?.deletionTimestamp);
  }

  /**
   * Takes a ready warm pod for the sandbox: a label patch conditional on the pod's resourceVersion
   * (409: another replica took it, the next is tried), then its Secret gets the sandbox's variables
   * (for restarts), its NetworkPolicy the sandbox's rules, and its executor `/api/init`.
   */
  private async claimWarm(template: KubernetesTemplate, spec: SandboxSpec): Promise<KubernetesSandboxHandle | null> {
    if (!this.warming || template.warmPoolSize === 0) return null;
    for (const pod of await this.warmPods(template)) {
      const verdict = podVerdict(pod);
      if (!verdict.ready) continue;
      const name = pod.metadata?.name as string;
      const slot = this.slotOf(name, template, spec.id, spec.tenantId ?? UNCLAIMED, 'claimed');
      const labels = { [LABEL.sandbox]: spec.id, [LABEL.tenant]: labelValue(slot.tenantId), [LABEL.pool]: 'claimed' };
      try {
        await this.core.patchNamespacedPod(
          { namespace: this.namespace, name, body: { metadata: { labels, resourceVersion: pod.metadata?.resourceVersion } }, fieldValidation: STRICT },
          MERGE_PATCH,
        );
      } catch (err) {
        if (isStatus(err, 409) || isStatus(err, 404)) continue;
        throw err;
      }
      try {
        return await this.bindClaimed(slot, labels, spec, verdict.podIP);
      } catch (err) {
        // A pod that took the claim but not the sandbox serves nobody: it goes, and the sandbox starts cold.
        await this.removeSlot(this.namespace, name);
        console.error(`berth: warm pod ${name} could not take sandbox ${spec.id}: ${(err as Error).message}`);
        return null;
      }
    }
    return null;
  }

  private async bindClaimed(slot: SlotSpec, labels: Record<string, string>, spec: SandboxSpec, podIP: string): Promise<KubernetesSandboxHandle> {
    const { namespace, slot: name } = slot;
    const env = spec.env ?? {};
    const secret = await this.core.patchNamespacedSecret({ namespace, name, body: { metadata: { labels }, stringData: { init: initBody(env) } }, fieldValidation: STRICT }, MERGE_PATCH);
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString('utf8');
    if (slot.template.workspace.type === 'pvc') await this.core.patchNamespacedPersistentVolumeClaim({ namespace, name, body: { metadata: { labels } }, fieldValidation: STRICT }, MERGE_PATCH);
    const policy = networkPolicyManifest(slot, this.rules(spec));
    await this.net.replaceNamespacedNetworkPolicy({ namespace, name, body: policy, fieldValidation: STRICT });
    const handle = this.handleOf(slot, token, podIP);
    await new ExecutorClient(handle, { timeoutMs: 10_000 }).init(POD_WORKSPACE, env);
    return handle;
  }

  /** Stops the watches; pods keep running (they belong to the cluster, and another process takes them over). */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.refilling.values()]);
  }
}

function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}
