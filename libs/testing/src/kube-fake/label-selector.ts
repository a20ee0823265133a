import { badRequest } from './api-status';

type Requirement = { key: string; op: 'in' | 'notin' | 'exists' | '!exists'; values: string[] };

/**
 * A label selector as the API server parses it: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
 * `k`, `!k`, joined by commas; all must hold. An unparsable one is a 400.
 */
export function parseLabelSelector(raw: string | null): (labels: Record<string, string> | undefined) => boolean {
  const requirements: Requirement[] = [];
  for (const part of splitTopLevel(raw ?? '')) {
    let m: RegExpExecArray | null;
    if ((m = /^([^\s=!()]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(part))) {
      requirements.push({ key: m[1], op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]] });
    } else if ((m = /^([^\s=!()]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      requirements.push({ key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) });
    } else if ((m = /^(!?)\s*([^\s=!(),]+)$/.exec(part))) {
      requirements.push({ key: m[2], op: m[1] ? '!exists' : 'exists', values: [] });
    } else {
      throw badRequest(`unable to parse requirement: ${JSON.stringify(part)}`);
    }
  }
  return (labels = {}) =>
    requirements.every(({ key, op, values }) => {
      const has = Object.hasOwn(labels, key);
      if (op === 'exists') return has;
      if (op === '!exists') return !has;
      if (op === 'in') return has && values.includes(labels[key]);
      return !has || !values.includes(labels[key]);
    });
}

/** Splits on the commas outside parentheses. */
function splitTopLevel(raw: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of raw) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** `metadata.name=x,metadata.namespace!=y` (the fields every resource supports). */
export function parseFieldSelector(raw: string | null): (object: { metadata?: { name?: string; namespace?: string } }) => boolean {
  const checks: Array<(o: { metadata?: { name?: string; namespace?: string } }) => boolean> = [];
  for (const part of splitTopLevel(raw ?? '')) {
    const m = /^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`"${part.split(/[=!]/)[0]}" is not a known field selector: only "metadata.name", "metadata.namespace"`);
    const field = m[1] === 'metadata.name' ? 'name' : 'namespace';
    checks.push((o) => (o.metadata?.[field] === m[3]) === (m[2] !== '!='));
  }
  return (o) => checks.every((check) => check(o));
}
