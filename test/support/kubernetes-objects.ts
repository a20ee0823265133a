/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */
import * as k8s from '@kubernetes/client-node';
import { createRequire } from 'node:module';
import { join } from 'node:path';

// kubernetes-models is ESM-only with `import`-only exports: its files are loaded by path (Node's require(esm)).
const MODELS = join(__dirname, '../../node_modules/kubernetes-models');
// js-yaml as @kubernetes/client-node (a dependency) has it; its own loadAllYaml would drop unknown fields.
const yaml = createRequire(require.resolve('@kubernetes/client-node'))('js-yaml') as { loadAll(text: string): unknown[] };

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: any;
}

/** The objects of a multi-document YAML stream (`helm template`), empty documents left out. */
export function parseManifests(text: string): KubeObject[] {
  return yaml.loadAll(text).filter((doc): doc is KubeObject => doc !== null && doc !== undefined);
}

/** The kubernetes-models schema's complaint about the object, or null. */
export function schemaError(object: KubeObject): string | null {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
  const file = join(MODELS, group || '', version, `${object.kind}.js`);
  const Model = require(file)[object.kind];
  try {
    new Model(object).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Fields the API server's strict decoding would refuse (kubernetes-models' validate() accepts
 * them), found by walking the object along @kubernetes/client-node's generated models, which list
 * every field of every type by its wire name.
 */
export function unknownFields(object: KubeObject): string[] {
  const version = object.apiVersion.split('/').pop() as string;
  return unknownAlong(object, `${version[0].toUpperCase()}${version.slice(1)}${object.kind}`, object.kind);
}

function unknownAlong(value: any, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const list = /^Array<(.+)>$/.exec(type);
  if (list) return (value as unknown[]).flatMap((item, i) => unknownAlong(item, list[1], `${path}[${i}]`));
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value).flatMap(([key, item]) => unknownAlong(item, map[1], `${path}.${key}`));
  const model = (k8s as any)[type];
  if (typeof model?.getAttributeTypeMap !== 'function') {
    if (/^V\d/.test(type)) throw new Error(`no client model ${type} (at ${path})`);
    return [];
  }
  const fields = new Map<string, string>(model.getAttributeTypeMap().map((a: { baseName: string; type: string }) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([key, item]) =>
    fields.has(key) ? unknownAlong(item, fields.get(key) as string, `${path}.${key}`) : [`${path}.${key}`],
  );
}

/**
 * Where the Pod Security Standards "restricted" profile (v1.30) refuses a pod spec: host namespaces,
 * volume types, privileged, privilege escalation, root, seccomp, capabilities, host ports.
 */
export function restrictedViolations(spec: any): string[] {
  const out: string[] = [];
  const podSc = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push('host namespaces');
  const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  for (const volume of spec.volumes ?? []) {
    const kinds = Object.keys(volume).filter((k) => k !== 'name');
    if (kinds.some((k) => !allowedVolumes.includes(k))) out.push(`volume ${volume.name}: ${kinds.join(',')}`);
  }
  if (podSc.runAsNonRoot === false || podSc.runAsUser === 0) out.push('pod: root');
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation`);
    if (!(sc.runAsNonRoot ?? podSc.runAsNonRoot)) out.push(`${c.name}: runAsNonRoot`);
    if ((sc.runAsUser ?? podSc.runAsUser) === 0) out.push(`${c.name}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? podSc.seccompProfile)?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${c.name}: seccompProfile`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${c.name}: capabilities drop ALL`);
    if ((sc.capabilities?.add ?? []).some((cap: string) => cap !== 'NET_BIND_SERVICE')) out.push(`${c.name}: capabilities add`);
    if ((c.ports ?? []).some((p: any) => p.hostPort)) out.push(`${c.name}: hostPort`);
  }
  return out;
}
