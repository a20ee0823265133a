import { join } from 'node:path';
import { projectRoot } from '@berth/config';
import { FieldError, KubeStatusError, ResourceName, badRequest, invalid } from './api-status';

interface AjvError {
  instancePath: string;
  keyword: string;
  params: { type?: string; missingProperty?: string; allowedValues?: unknown[]; format?: string };
  message?: string;
}
type Validate = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

// kubernetes-models is ESM-only with `import`-only exports: its compiled schemas are loaded by path (Node's require(esm)).
const SCHEMAS = join(projectRoot(), 'node_modules/kubernetes-models/_schemas');
const validators = new Map<string, Validate>();
function validatorOf(definition: string): Validate {
  let validate = validators.get(definition);
  if (!validate) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    validate = (require(join(SCHEMAS, `${definition}.js`)) as { validate: Validate }).validate;
    validators.set(definition, validate);
  }
  return validate;
}

/**
 * Runs a kubernetes-models validator over the object through proxies that record which fields it
 * reads: a generated validator reads every field its definition declares (and lists the keys of a
 * map), so a field it never read is one the definition does not have — an unknown field, as the
 * API server's strict decoding finds it. (A free-form object — `x-kubernetes-preserve-unknown-fields` — would show
 * all its fields as unknown; none of the served kinds has one where Berth writes.)
 */
function validateTracked(validate: Validate, object: unknown): { errors: AjvError[]; unknown: string[][] } {
  const records = new Map<object, { path: string[]; read: Set<string>; listed: boolean }>();
  const proxies = new WeakMap<object, object>();
  const track = (value: unknown, path: string[]): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const known = proxies.get(value);
    if (known) return known;
    const record = { path, read: new Set<string>(), listed: false };
    records.set(value, record);
    const proxy = new Proxy(value, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver);
        if (typeof key !== 'string' || !Object.hasOwn(target, key)) return v;
        record.read.add(key);
        return track(v, [...path, key]);
      },
      ownKeys(target) {
        record.listed = true;
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  const ok = validate(track(object, []));
  // In the order of the document, as the decoder meets them.
  const unknown: string[][] = [];
  const walk = (value: unknown, path: string[]) => {
    if (value === null || typeof value !== 'object') return;
    const record = records.get(value);
    if (!record) return;
    for (const [key, child] of Object.entries(value)) {
      if (!Array.isArray(value) && !record.listed && !record.read.has(key)) unknown.push([...path, key]);
      else walk(child, [...path, key]);
    }
  };
  walk(object, []);
  return { errors: ok ? [] : (validate.errors ?? []), unknown };
}

/** `spec.containers[0].image` from ['spec', 'containers', '0', 'image']. */
export function fieldPath(path: string[]): string {
  return path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

const JSON_TYPE: Record<string, string> = { string: 'string', number: 'number', boolean: 'bool', object: 'object' };
const GO_TYPE: Record<string, string> = { integer: 'int32', number: 'float64', string: 'string', boolean: 'bool', object: 'struct', array: 'slice' };

function valueAt(object: unknown, path: string[]): unknown {
  return path.reduce<unknown>((v, key) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined), object);
}

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

/**
 * Decodes and validates an object the way the API server does, against the kubernetes-models
 * schema `definition`: a field of the wrong type, or (with `Strict`) an unknown field, fails the
 * decoding (400 BadRequest: "… cannot be handled as a Pod: …"); with `Warn` (the server's default)
 * and `Ignore` unknown fields are dropped, `Warn` returning a warning for each. Then what the schema
 * refuses (a required field missing, a value not allowed) is 422 Invalid.
 */
export function decodeAndValidate(object: Record<string, unknown>, definition: string, kind: string, apiVersion: string, r: ResourceName, fieldValidation: FieldValidation): string[] {
  const validate = validatorOf(definition);
  const { errors, unknown } = validateTracked(validate, object);
  const cannot = `${kind} in version "${apiVersion.split('/').pop()}" cannot be handled as a ${kind}`;
  const typeError = errors.find((e) => e.keyword === 'type');
  if (typeError) {
    const path = typeError.instancePath.split('/').filter(Boolean);
    const got = valueAt(object, path);
    const jsonType = Array.isArray(got) ? 'array' : (JSON_TYPE[typeof got] ?? typeof got);
    const goField = path.filter((p) => !/^\d+$/.test(p)).join('.');
    throw badRequest(`${cannot}: json: cannot unmarshal ${jsonType} into Go struct field ${goField} of type ${GO_TYPE[typeError.params.type ?? ''] ?? typeError.params.type}`);
  }
  if (unknown.length && fieldValidation === 'Strict') {
    throw badRequest(`${cannot}: strict decoding error: ${unknown.map((p) => `unknown field "${fieldPath(p)}"`).join(', ')}`);
  }
  for (const path of unknown) {
    const parent = valueAt(object, path.slice(0, -1)) as Record<string, unknown>;
    delete parent[path[path.length - 1]];
  }
  const fieldErrors: FieldError[] = errors.map((e) => {
    const path = e.instancePath.split('/').filter(Boolean);
    if (e.keyword === 'required') return { field: fieldPath([...path, e.params.missingProperty ?? '']), type: 'FieldValueRequired', detail: 'Required value' };
    const value = JSON.stringify(valueAt(object, path));
    if (e.keyword === 'enum') {
      const allowed = (e.params.allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ');
      return { field: fieldPath(path), type: 'FieldValueNotSupported', detail: `Unsupported value: ${value}: supported values: ${allowed}` };
    }
    return { field: fieldPath(path), type: 'FieldValueInvalid', detail: `Invalid value: ${value}: ${e.message ?? e.keyword}` };
  });
  if (fieldErrors.length) throw invalid(kind, r, fieldErrors);
  return fieldValidation === 'Warn' ? unknown.map((p) => `unknown field "${fieldPath(p)}"`) : [];
}

/**
 * An object's kubernetes-models definition from its apiVersion and kind: `apps/v1` Deployment →
 * IoK8sApiAppsV1Deployment, `rbac.authorization.k8s.io/v1` Role → IoK8sApiRbacV1Role.
 */
export function definitionOf(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['core', apiVersion];
  const name = group.split('.')[0];
  const upper = (w: string) => `${w[0].toUpperCase()}${w.slice(1)}`;
  return `IoK8sApi${upper(name)}${upper(version)}${kind}`;
}

/**
 * What the API server would say of an object of any kind kubernetes-models knows (a rendered chart,
 * say) under strict field validation: its decoding or validation error, or null when it would take it.
 */
export function strictDecodingError(object: { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string } }): string | null {
  const r: ResourceName = { resource: object.kind.toLowerCase(), group: object.apiVersion.includes('/') ? object.apiVersion.split('/')[0] : '', name: object.metadata?.name ?? '' };
  try {
    decodeAndValidate(structuredClone(object) as Record<string, unknown>, definitionOf(object.apiVersion, object.kind), object.kind, object.apiVersion, r, 'Strict');
    return null;
  } catch (err) {
    if (err instanceof KubeStatusError) return err.message;
    throw err;
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** What ObjectMeta validation refuses: a name that is no DNS subdomain (a Service's: no DNS-1035 label), bad label keys and values. */
export function validateMetadata(metadata: { name?: string; labels?: Record<string, string> }, nameRule: 'subdomain' | 'label', kind: string, r: ResourceName): void {
  const errors: FieldError[] = [];
  const name = metadata.name ?? '';
  if (!name) errors.push({ field: 'metadata.name', type: 'FieldValueRequired', detail: 'Required value: name or generateName is required' });
  else if (nameRule === 'subdomain' && (name.length > 253 || !DNS_SUBDOMAIN.test(name))) {
    errors.push({
      field: 'metadata.name',
      type: 'FieldValueInvalid',
      detail: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
    });
  } else if (nameRule === 'label' && (name.length > 63 || !DNS_LABEL.test(name))) {
    errors.push({
      field: 'metadata.name',
      type: 'FieldValueInvalid',
      detail: `Invalid value: ${JSON.stringify(name)}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
    });
  }
  for (const [key, value] of Object.entries(metadata.labels ?? {})) {
    const [prefix, keyName] = key.includes('/') ? [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)] : ['', key];
    if ((prefix && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) || keyName.length > 63 || !LABEL_NAME.test(keyName)) {
      errors.push({ field: 'metadata.labels', type: 'FieldValueInvalid', detail: `Invalid value: ${JSON.stringify(key)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
    if (value.length > 63 || !LABEL_VALUE.test(value)) {
      errors.push({ field: 'metadata.labels', type: 'FieldValueInvalid', detail: `Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
  }
  if (errors.length) throw invalid(kind, r, errors);
}
