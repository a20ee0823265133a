/** A `kind: Status` failure body, as the API server answers every refused request. */
export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; causes?: Array<{ reason: string; message: string; field: string }> };
  code: number;
}

/** A refused request: its HTTP code is the Status' code. */
export class KubeStatusError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
}

function failure(code: number, reason: string, message: string, details?: KubeStatus['details']): KubeStatusError {
  return new KubeStatusError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });
}

/** `resource` is the plural (`pods`), `group` the API group ('' for core), as the server names them. */
export interface ResourceName {
  resource: string;
  group: string;
  name: string;
}

const qualified = ({ resource, group }: ResourceName) => (group ? `${resource}.${group}` : resource);
const detailsOf = (r: ResourceName) => ({ name: r.name, ...(r.group ? { group: r.group } : {}), kind: r.resource });

export const notFound = (r: ResourceName) => failure(404, 'NotFound', `${qualified(r)} "${r.name}" not found`, detailsOf(r));
export const alreadyExists = (r: ResourceName) => failure(409, 'AlreadyExists', `${qualified(r)} "${r.name}" already exists`, detailsOf(r));
export const conflict = (r: ResourceName) =>
  failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${r.name}": the object has been modified; please apply your changes to the latest version and try again`, detailsOf(r));
export const forbidden = (r: ResourceName, why: string) => failure(403, 'Forbidden', `${qualified(r)} "${r.name}" is forbidden: ${why}`, detailsOf(r));
export const badRequest = (message: string) => failure(400, 'BadRequest', message);
export const unauthorized = () => failure(401, 'Unauthorized', 'Unauthorized');
export const methodNotAllowed = () => failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
export const unsupportedMediaType = (type: string) => failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json (got ${type})`);
/** A watch from a version older than the server keeps (sent as an ERROR event of a 200 watch, as the watch cache does). */
export const expired = (from: number, oldest: number) => failure(410, 'Expired', `too old resource version: ${from} (${oldest})`);

export interface FieldError {
  /** `spec.containers[0].image` */
  field: string;
  /** FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueForbidden */
  type: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueNotSupported' | 'FieldValueForbidden';
  /** `Required value`, `Invalid value: "x": …` */
  detail: string;
}

/** 422: `Pod "x" is invalid: spec.containers[0].image: Required value` (several joined in brackets, as the server does). */
export function invalid(kind: string, r: ResourceName, errors: FieldError[]): KubeStatusError {
  const parts = errors.map((e) => `${e.field}: ${e.detail}`);
  const message = `${kind} "${r.name}" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`}`;
  return failure(422, 'Invalid', message, { name: r.name, ...(r.group ? { group: r.group } : {}), kind, causes: errors.map((e) => ({ reason: e.type, message: e.detail, field: e.field })) });
}
