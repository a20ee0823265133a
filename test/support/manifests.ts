/* eslint-disable @typescript-eslint/no-explicit-any */
/** Rendered manifests as objects (their checks are FakeKube's: strictDecodingError, restrictedViolation of @berth/testing). */
import { createRequire } from 'node:module';

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
