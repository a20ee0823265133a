import { existsSync, mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, V1Pod, Watch } from '@kubernetes/client-node';
import { until } from '../until';
import { FakeKube } from './fake-kube';

const NS = 'team';

/** A pod the restricted profile admits, running `sleep` (no executor needed). */
function restrictedPod(name: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'demo' } },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'main',
          image: 'busybox:1',
          command: ['/bin/sleep', '600'],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
}

describe('FakeKube', () => {
  let dataDir: string;
  let fake: FakeKube;
  let core: CoreV1Api;

  /** A request as any client may send it (the typed client drops fields it does not know). */
  const raw = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(`${fake.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${fake.kubeConfig().getCurrentUser()!.token}`, 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, warning: res.headers.get('warning'), body: (await res.json()) as any };
  };

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-fake-kube-'));
    fake = await FakeKube.start({ dataDir });
    core = fake.kubeConfig().makeApiClient(CoreV1Api);
  });

  afterEach(async () => {
    await fake.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a request without its token (401 Status)', async () => {
    const res = await fetch(`${fake.url}/api/v1/namespaces/${NS}/pods`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
  });

  describe('decoding and validation', () => {
    it('refuses an unknown field with fieldValidation=Strict, and drops it with a warning by default', async () => {
      const pod = restrictedPod('strict');
      const body = { ...pod, spec: { ...pod.spec, foo: 1, containers: [{ ...pod.spec!.containers[0], bar: true }] } };
      const strict = await raw('POST', `/api/v1/namespaces/${NS}/pods?fieldValidation=Strict`, body);
      expect(strict.status).toBe(400);
      expect(strict.body).toMatchObject({
        kind: 'Status',
        reason: 'BadRequest',
        code: 400,
        message: 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].bar", unknown field "spec.foo"',
      });
      const warned = await raw('POST', `/api/v1/namespaces/${NS}/pods`, body);
      expect(warned.status).toBe(201);
      expect(warned.warning).toBe('299 - "unknown field \\"spec.containers[0].bar\\"", 299 - "unknown field \\"spec.foo\\""');
      expect(warned.body.spec.foo).toBeUndefined();
    });

    it('refuses a field of the wrong type as the decoder does (400)', async () => {
      const pod = restrictedPod('typed');
      pod.spec!.containers[0].ports = [{ containerPort: 'eighty' as unknown as number }];
      const res = await raw('POST', `/api/v1/namespaces/${NS}/pods`, pod);
      expect(res.status).toBe(400);
      expect(res.body.message).toBe('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field spec.containers.ports.containerPort of type int32');
    });

    it('answers 422 Invalid for a missing required field, a value not allowed and a bad name', async () => {
      const pod = restrictedPod('invalid');
      delete (pod.spec!.containers[0] as { name?: string }).name;
      const missing = await raw('POST', `/api/v1/namespaces/${NS}/pods`, pod);
      expect(missing.status).toBe(422);
      expect(missing.body).toMatchObject({ reason: 'Invalid', message: 'Pod "invalid" is invalid: spec.containers[0].name: Required value', details: { causes: [{ reason: 'FieldValueRequired', field: 'spec.containers[0].name' }] } });
      const badName = await raw('POST', `/api/v1/namespaces/${NS}/secrets`, { metadata: { name: 'Not_A_Name' } });
      expect(badName.status).toBe(422);
      expect(badName.body.message).toMatch(/^Secret "Not_A_Name" is invalid: metadata.name: Invalid value: "Not_A_Name": a lowercase RFC 1123 subdomain/);
      const badLabel = await raw('POST', `/api/v1/namespaces/${NS}/secrets`, { metadata: { name: 'ok', labels: { a: 'not ok' } } });
      expect(badLabel.status).toBe(422);
    });

    it("folds a Secret's stringData into base64 data, on create and on patch", async () => {
      const created = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 's' }, stringData: { token: 'tok' }, data: { other: Buffer.from('x').toString('base64') } } });
      expect(created.data).toEqual({ token: Buffer.from('tok').toString('base64'), other: Buffer.from('x').toString('base64') });
      expect(created.stringData).toBeUndefined();
      expect(created.type).toBe('Opaque');
      const patched = await raw('PATCH', `/api/v1/namespaces/${NS}/secrets/s`, { stringData: { token: 'new' } }, 'application/merge-patch+json');
      expect(patched.body.data.token).toBe(Buffer.from('new').toString('base64'));
    });
  });

  describe('admission: the restricted Pod Security profile', () => {
    const forbiddenMessage = async (change: (pod: V1Pod) => void) => {
      const pod = restrictedPod('p');
      change(pod);
      const res = await raw('POST', `/api/v1/namespaces/${NS}/pods`, pod);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ kind: 'Status', reason: 'Forbidden', code: 403, details: { name: 'p', kind: 'pods' } });
      return res.body.message as string;
    };
    const c = (pod: V1Pod) => pod.spec!.containers[0];

    it.each<[string, (pod: V1Pod) => void, string]>([
      ['privileged', (pod) => (c(pod).securityContext!.privileged = true), 'privileged (container "main" must not set securityContext.privileged=true)'],
      ['allowPrivilegeEscalation', (pod) => delete c(pod).securityContext!.allowPrivilegeEscalation, 'allowPrivilegeEscalation != false (container "main" must set securityContext.allowPrivilegeEscalation=false)'],
      ['capabilities drop', (pod) => (c(pod).securityContext!.capabilities = {}), 'unrestricted capabilities (container "main" must set securityContext.capabilities.drop=["ALL"])'],
      ['capabilities add', (pod) => (c(pod).securityContext!.capabilities!.add = ['SYS_ADMIN']), 'unrestricted capabilities (container "main" must not include "SYS_ADMIN" in securityContext.capabilities.add)'],
      ['runAsNonRoot', (pod) => delete pod.spec!.securityContext!.runAsNonRoot, 'runAsNonRoot != true (pod or container "main" must set securityContext.runAsNonRoot=true)'],
      ['runAsUser 0', (pod) => (pod.spec!.securityContext!.runAsUser = 0), 'runAsUser=0 (pod must not set runAsUser=0)'],
      ['seccomp', (pod) => (pod.spec!.securityContext!.seccompProfile = { type: 'Unconfined' }), 'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'],
      ['host namespaces', (pod) => Object.assign(pod.spec!, { hostNetwork: true, hostPID: true }), 'host namespaces (hostNetwork=true, hostPID=true)'],
      ['hostPort', (pod) => (c(pod).ports = [{ containerPort: 80, hostPort: 8080 }]), 'hostPort (container "main" uses hostPort 8080)'],
      ['hostPath', (pod) => (pod.spec!.volumes = [{ name: 'host', hostPath: { path: '/' } }]), 'restricted volume types (volume "host" uses restricted volume type "hostPath")'],
      ['sysctls', (pod) => (pod.spec!.securityContext!.sysctls = [{ name: 'kernel.msgmax', value: '1' }]), 'forbidden sysctls (kernel.msgmax)'],
    ])('refuses %s', async (_rule, change, expected) => {
      expect(await forbiddenMessage(change)).toBe(`pods "p" is forbidden: violates PodSecurity "restricted:latest": ${expected}`);
    });

    it('admits NET_BIND_SERVICE and a Localhost seccomp profile', async () => {
      const pod = restrictedPod('ok');
      c(pod).securityContext!.capabilities!.add = ['NET_BIND_SERVICE'];
      pod.spec!.securityContext!.seccompProfile = { type: 'Localhost', localhostProfile: 'profiles/x.json' };
      expect((await raw('POST', `/api/v1/namespaces/${NS}/pods`, pod)).status).toBe(201);
    });
  });

  describe('watch', () => {
    /** Events of a watch until `count` have come (or it ends). */
    const watchEvents = (path: string, query: Record<string, string>, count: number) =>
      new Promise<Array<{ type: string; object: any }>>((resolve, reject) => {
        const events: Array<{ type: string; object: any }> = [];
        let controller: AbortController | undefined;
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          controller?.abort();
          resolve(events);
        };
        new Watch(fake.kubeConfig())
          .watch(
            path,
            query,
            (type, object) => {
              events.push({ type, object });
              if (events.length >= count) finish();
            },
            finish,
          )
          .then((c) => {
            controller = c;
            if (done) c.abort();
          }, reject);
      });

    it('replays from a version, filters by label selector (a label change out of it is DELETED), then goes live', async () => {
      const a = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'a', labels: { pool: 'warm' } } } });
      await raw('PATCH', `/api/v1/namespaces/${NS}/secrets/a`, { metadata: { labels: { pool: 'claimed' } } }, 'application/merge-patch+json');
      const events = watchEvents(`/api/v1/namespaces/${NS}/secrets`, { resourceVersion: a.metadata!.resourceVersion!, labelSelector: 'pool=warm' }, 2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'b', labels: { pool: 'warm' } } } });
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'c', labels: { pool: 'claimed' } } } });
      const seen = await events;
      expect(seen.map((e) => [e.type, e.object.metadata.name])).toEqual([
        ['DELETED', 'a'],
        ['ADDED', 'b'],
      ]);
      expect(Number(seen[1].object.metadata.resourceVersion)).toBeGreaterThan(Number(seen[0].object.metadata.resourceVersion));
    });

    it('starts with the current state without a version', async () => {
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'x' } } });
      const seen = await watchEvents(`/api/v1/namespaces/${NS}/secrets`, {}, 1);
      expect(seen.map((e) => [e.type, e.object.kind, e.object.metadata.name])).toEqual([['ADDED', 'Secret', 'x']]);
    });

    it('ends a watch from a version it no longer keeps with an ERROR event: 410 Expired', async () => {
      const old = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'x' } } });
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'y' } } });
      fake.compact();
      const seen = await watchEvents(`/api/v1/namespaces/${NS}/secrets`, { resourceVersion: old.metadata!.resourceVersion! }, 5);
      expect(seen).toEqual([{ type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired', message: expect.stringMatching(/^too old resource version: /) }) }]);
    });
  });

  describe('updates', () => {
    it('refuses a merge patch whose resourceVersion is not the current one (409 Conflict)', async () => {
      const created = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 's', labels: { a: '1' } } } });
      const first = await raw('PATCH', `/api/v1/namespaces/${NS}/secrets/s`, { metadata: { labels: { a: '2' }, resourceVersion: created.metadata!.resourceVersion } }, 'application/merge-patch+json');
      expect(first.status).toBe(200);
      expect(first.body.metadata.labels).toEqual({ a: '2' });
      const stale = await raw('PATCH', `/api/v1/namespaces/${NS}/secrets/s`, { metadata: { labels: { a: '3' }, resourceVersion: created.metadata!.resourceVersion } }, 'application/merge-patch+json');
      expect(stale.status).toBe(409);
      expect(stale.body).toMatchObject({ reason: 'Conflict', message: 'Operation cannot be fulfilled on secrets "s": the object has been modified; please apply your changes to the latest version and try again' });
      expect((await raw('PATCH', `/api/v1/namespaces/${NS}/secrets/s`, { metadata: { labels: { a: null } } }, 'application/merge-patch+json')).body.metadata.labels).toBeUndefined();
      expect((await raw('PATCH', `/api/v1/namespaces/${NS}/secrets/s`, [], 'application/json-patch+json')).status).toBe(415);
    });

    it('answers AlreadyExists and NotFound as Status bodies', async () => {
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 's' } } });
      const again = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 's' } } }).catch((e: ApiException<string>) => e);
      expect((again as ApiException<string>).code).toBe(409);
      expect(JSON.parse((again as ApiException<string>).body)).toMatchObject({ reason: 'AlreadyExists', message: 'secrets "s" already exists' });
      const missing = await core.readNamespacedPod({ namespace: NS, name: 'nope' }).catch((e: ApiException<string>) => e);
      expect(JSON.parse((missing as ApiException<string>).body)).toMatchObject({ reason: 'NotFound', message: 'pods "nope" not found', code: 404 });
    });

    it('keeps a pod spec immutable but for its image', async () => {
      await core.createNamespacedPod({ namespace: NS, body: restrictedPod('p') });
      const res = await raw('PATCH', `/api/v1/namespaces/${NS}/pods/p`, { spec: { restartPolicy: 'Never' } }, 'application/merge-patch+json');
      expect(res.status).toBe(422);
      expect(res.body.message).toMatch(/^Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than/);
    });

    it('lists by label selector: equality, inequality, existence, sets', async () => {
      for (const [name, labels] of [
        ['a', { tier: 'web', env: 'prod' }],
        ['b', { tier: 'web', env: 'dev' }],
        ['c', { tier: 'db' }],
      ] as const) {
        await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name, labels } } });
      }
      const names = async (labelSelector: string) => (await core.listNamespacedSecret({ namespace: NS, labelSelector })).items.map((s) => s.metadata!.name);
      expect(await names('tier=web,env!=dev')).toEqual(['a']);
      expect(await names('env')).toEqual(['a', 'b']);
      expect(await names('!env')).toEqual(['c']);
      expect(await names('tier in (db, web),env notin (prod)')).toEqual(['b', 'c']);
    });
  });

  describe('pods', () => {
    const ready = (name: string) => until(() => fake.object('pods', NS, name)?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') ?? false, `pod ${name} ready`);

    it("runs a pod's command with its env only: values, Secret keys (optional ones may be missing), the downward API", async () => {
      process.env.FAKE_KUBE_PARENT_SECRET = 'leak';
      try {
        await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'creds' }, stringData: { key: 'v4lue' } } });
        const pod = restrictedPod('envy');
        pod.spec!.containers[0].env = [
          { name: 'PLAIN', value: 'x' },
          { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'creds', key: 'key' } } },
          { name: 'MAYBE', valueFrom: { secretKeyRef: { name: 'creds', key: 'absent', optional: true } } },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        ];
        await core.createNamespacedPod({ namespace: NS, body: pod });
        await ready('envy');
        const [running] = fake.pods();
        expect(running.podIP).toMatch(/^127\.80\.\d+\.\d+$/);
        const environ = Object.fromEntries(
          (await readFile(`/proc/${running.pid}/environ`, 'utf8'))
            .split('\0')
            .filter(Boolean)
            .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
        );
        expect(environ).toEqual({ PATH: expect.any(String), HOSTNAME: 'envy', PLAIN: 'x', FROM_SECRET: 'v4lue', IP: running.podIP, NAME: 'envy' });
      } finally {
        delete process.env.FAKE_KUBE_PARENT_SECRET;
      }
    });

    it('waits in CreateContainerConfigError for a missing Secret, and starts once it exists', async () => {
      const pod = restrictedPod('later');
      pod.spec!.containers[0].env = [{ name: 'K', valueFrom: { secretKeyRef: { name: 'late', key: 'k' } } }];
      await core.createNamespacedPod({ namespace: NS, body: pod });
      await until(() => fake.object('pods', NS, 'later')?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError', 'the config error');
      expect(fake.object('pods', NS, 'later')!.status.containerStatuses[0].state.waiting.message).toBe('secret "late" not found');
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'late' }, stringData: { k: 'v' } } });
      await ready('later');
    });

    it('deletes with grace: deletionTimestamp first, gone once the container ended; without grace at once', async () => {
      await core.createNamespacedPod({ namespace: NS, body: restrictedPod('graceful') });
      await core.createNamespacedPod({ namespace: NS, body: restrictedPod('abrupt') });
      await ready('graceful');
      await ready('abrupt');
      const deleting = await core.deleteNamespacedPod({ namespace: NS, name: 'graceful', gracePeriodSeconds: 30 });
      expect(deleting.metadata?.deletionTimestamp).toBeDefined();
      expect(deleting.metadata?.deletionGracePeriodSeconds).toBe(30);
      await until(() => fake.object('pods', NS, 'graceful') === undefined, 'the pod to go after SIGTERM');
      await core.deleteNamespacedPod({ namespace: NS, name: 'abrupt', gracePeriodSeconds: 0 });
      expect(fake.object('pods', NS, 'abrupt')).toBeUndefined();
      await until(() => fake.pods().length === 0, 'the containers to end');
      const status = await raw('DELETE', `/api/v1/namespaces/${NS}/secrets/none`);
      expect(status.status).toBe(404);
    });

    it('keeps a claim a pod uses (pvc-protection) until the pod is gone; a pod of a missing claim is unschedulable', async () => {
      const pod = restrictedPod('user');
      pod.spec!.volumes = [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }];
      pod.spec!.containers[0].volumeMounts = [{ name: 'data', mountPath: '/data' }];
      await core.createNamespacedPod({ namespace: NS, body: pod });
      await until(() => fake.object('pods', NS, 'user')?.status?.conditions?.[0]?.reason === 'Unschedulable', 'Unschedulable');
      await core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: { metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } });
      await ready('user');
      const folder = fake.claimFolder(NS, 'data')!;
      await core.deleteNamespacedPersistentVolumeClaim({ namespace: NS, name: 'data' });
      expect(fake.object('persistentvolumeclaims', NS, 'data')!.metadata.finalizers).toEqual(['kubernetes.io/pvc-protection']);
      await core.deleteNamespacedPod({ namespace: NS, name: 'user', gracePeriodSeconds: 0 });
      expect(fake.object('persistentvolumeclaims', NS, 'data')).toBeUndefined();
      expect(fake.claimFolder(NS, 'data')).toBeNull();
      expect(folder).toContain(dataDir);
    });

    it("without isolation gives a pod only a mount namespace: its volumes at their paths, the host's folders untouched", async () => {
      const bare = await FakeKube.start({ dataDir: mkdtempSync(join(dataDir, 'bare-')), isolation: 'none' });
      try {
        const pod = restrictedPod('bare');
        pod.spec!.volumes = [{ name: 'scratch', emptyDir: {} }];
        pod.spec!.containers[0].volumeMounts = [{ name: 'scratch', mountPath: '/berth-fake-scratch' }];
        pod.spec!.containers[0].command = ['/bin/sh', '-c', 'echo hi > /berth-fake-scratch/f && exec sleep 600'];
        await bare.kubeConfig().makeApiClient(CoreV1Api).createNamespacedPod({ namespace: NS, body: pod });
        await until(() => bare.pods().length === 1 && existsSync(join(bare.pods()[0].volumes.scratch, 'f')), 'the file in the volume');
        expect(existsSync('/berth-fake-scratch')).toBe(false);
      } finally {
        await bare.close();
      }
    });

    it('restarts a killed container (restartCount), then backs off in CrashLoopBackOff when it keeps dying', async () => {
      await core.createNamespacedPod({ namespace: NS, body: restrictedPod('crashy') });
      await ready('crashy');
      const first = fake.pods()[0].pid;
      await fake.crashContainer('crashy');
      await ready('crashy');
      expect(fake.pods()[0]).toMatchObject({ restartCount: 1 });
      expect(fake.pods()[0].pid).not.toBe(first);
      await fake.crashLoop('crashy');
      await until(() => {
        const status = fake.object('pods', NS, 'crashy')?.status?.containerStatuses?.[0];
        return status?.state?.waiting?.reason === 'CrashLoopBackOff' && status.restartCount >= 3;
      }, 'CrashLoopBackOff');
      expect(fake.object('pods', NS, 'crashy')!.status.containerStatuses[0].lastState.terminated).toMatchObject({ exitCode: 1, reason: 'Error' });
    });
  });
});
