/* eslint-disable @typescript-eslint/no-explicit-any */

/** The volume types the restricted profile allows (besides none). */
const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
/** Sysctls the baseline profile allows. */
const SAFE_SYSCTLS = ['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes'];
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];

type Check = { id: string; check: (spec: any, containers: any[]) => string | null };

const quoteList = (names: string[]) => names.map((n) => JSON.stringify(n)).join(', ');
/** `container "a"` / `containers "a", "b"`, as the admission names them. */
const containersNamed = (names: string[], prefix = '') => `${prefix}${names.length === 1 ? 'container' : 'containers'} ${quoteList(names)}`;
const must = (names: string[], what: string) => `${containersNamed(names)} must ${what}`;

/**
 * The Pod Security Standards "restricted" profile as of Kubernetes v1.30 (the baseline checks and
 * the restricted ones, the restricted overriding the baseline where both exist), in the order and
 * words of the pod-security admission plugin, by check id.
 */
const CHECKS: Check[] = [
  {
    id: 'allowPrivilegeEscalation',
    check: (_spec, cs) => {
      const bad = cs.filter((c) => c.securityContext?.allowPrivilegeEscalation !== false).map((c) => c.name);
      return bad.length ? `allowPrivilegeEscalation != false (${must(bad, 'set securityContext.allowPrivilegeEscalation=false')})` : null;
    },
  },
  {
    id: 'appArmorProfile',
    check: (spec, cs) => {
      const ok = (p: any) => !p || p.type === 'RuntimeDefault' || p.type === 'Localhost';
      const bad = cs.filter((c) => !ok(c.securityContext?.appArmorProfile)).map((c) => c.name);
      if (!ok(spec.securityContext?.appArmorProfile)) bad.unshift('pod');
      return bad.length ? `forbidden AppArmor profile (${bad.join(', ')} must not set appArmorProfile.type="Unconfined")` : null;
    },
  },
  {
    id: 'capabilities_restricted',
    check: (_spec, cs) => {
      const parts: string[] = [];
      const noDrop = cs.filter((c) => !(c.securityContext?.capabilities?.drop ?? []).includes('ALL')).map((c) => c.name);
      if (noDrop.length) parts.push(must(noDrop, 'set securityContext.capabilities.drop=["ALL"]'));
      const added = new Map<string, string[]>();
      for (const c of cs) for (const cap of c.securityContext?.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') added.set(c.name, [...(added.get(c.name) ?? []), cap]);
      if (added.size) parts.push(`${containersNamed([...added.keys()])} must not include ${quoteList([...new Set([...added.values()].flat())])} in securityContext.capabilities.add`);
      return parts.length ? `unrestricted capabilities (${parts.join('; ')})` : null;
    },
  },
  {
    id: 'hostNamespaces',
    check: (spec) => {
      const on = ['hostNetwork', 'hostPID', 'hostIPC'].filter((k) => spec[k] === true).map((k) => `${k}=true`);
      return on.length ? `host namespaces (${on.join(', ')})` : null;
    },
  },
  {
    id: 'hostPorts',
    check: (_spec, cs) => {
      const uses = cs.flatMap((c) => (c.ports ?? []).filter((p: any) => p.hostPort).map((p: any) => ({ name: c.name, port: p.hostPort })));
      if (!uses.length) return null;
      const names = [...new Set(uses.map((u) => u.name))];
      return `hostPort (${containersNamed(names)} ${names.length === 1 ? 'uses' : 'use'} ${uses.length === 1 ? 'hostPort' : 'hostPorts'} ${uses.map((u) => u.port).join(', ')})`;
    },
  },
  {
    id: 'privileged',
    check: (_spec, cs) => {
      const bad = cs.filter((c) => c.securityContext?.privileged === true).map((c) => c.name);
      return bad.length ? `privileged (${must(bad, 'not set securityContext.privileged=true')})` : null;
    },
  },
  {
    id: 'procMount',
    check: (_spec, cs) => {
      const bad = cs.filter((c) => c.securityContext?.procMount && c.securityContext.procMount !== 'Default').map((c) => c.name);
      return bad.length ? `procMount (${must(bad, 'not set securityContext.procMount to "Unmasked"')})` : null;
    },
  },
  {
    id: 'restrictedVolumes',
    check: (spec) => {
      const bad = (spec.volumes ?? []).flatMap((v: any) => {
        const type = Object.keys(v).find((k) => k !== 'name');
        return type && !RESTRICTED_VOLUMES.includes(type) ? [{ name: v.name, type }] : [];
      });
      if (!bad.length) return null;
      const names = quoteList(bad.map((b: any) => b.name));
      const types = quoteList([...new Set<string>(bad.map((b: any) => b.type as string))]);
      return `restricted volume types (${bad.length === 1 ? 'volume' : 'volumes'} ${names} ${bad.length === 1 ? 'uses' : 'use'} restricted volume ${bad.length === 1 ? 'type' : 'types'} ${types})`;
    },
  },
  {
    id: 'runAsNonRoot',
    check: (spec, cs) => {
      const podSays = spec.securityContext?.runAsNonRoot;
      if (podSays === false) return 'runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)';
      const explicitFalse = cs.filter((c) => c.securityContext?.runAsNonRoot === false).map((c) => c.name);
      if (explicitFalse.length) return `runAsNonRoot != true (${must(explicitFalse, 'not set securityContext.runAsNonRoot=false')})`;
      const unset = cs.filter((c) => c.securityContext?.runAsNonRoot !== true && podSays !== true).map((c) => c.name);
      return unset.length ? `runAsNonRoot != true (pod or ${must(unset, 'set securityContext.runAsNonRoot=true')})` : null;
    },
  },
  {
    id: 'runAsUser',
    check: (spec, cs) => {
      if (spec.securityContext?.runAsUser === 0) return 'runAsUser=0 (pod must not set runAsUser=0)';
      const bad = cs.filter((c) => c.securityContext?.runAsUser === 0).map((c) => c.name);
      return bad.length ? `runAsUser=0 (${must(bad, 'not set runAsUser=0')})` : null;
    },
  },
  {
    id: 'seLinuxOptions',
    check: (spec, cs) => {
      const bad = (o: any) => o && (!SELINUX_TYPES.includes(o.type ?? '') || o.user || o.role);
      const named = cs.filter((c) => bad(c.securityContext?.seLinuxOptions)).map((c) => c.name);
      if (bad(spec.securityContext?.seLinuxOptions)) return 'seLinuxOptions (pod set forbidden securityContext.seLinuxOptions)';
      return named.length ? `seLinuxOptions (${containersNamed(named)} set forbidden securityContext.seLinuxOptions)` : null;
    },
  },
  {
    id: 'seccompProfile_restricted',
    check: (spec, cs) => {
      const ok = (p: any) => p?.type === 'RuntimeDefault' || p?.type === 'Localhost';
      const podProfile = spec.securityContext?.seccompProfile;
      if (podProfile && !ok(podProfile)) return `seccompProfile (pod must not set securityContext.seccompProfile.type to ${JSON.stringify(podProfile.type)})`;
      const explicit = cs.filter((c) => c.securityContext?.seccompProfile && !ok(c.securityContext.seccompProfile));
      if (explicit.length) return `seccompProfile (${must(explicit.map((c) => c.name), `not set securityContext.seccompProfile.type to ${JSON.stringify(explicit[0].securityContext.seccompProfile.type)}`)})`;
      const unset = cs.filter((c) => !c.securityContext?.seccompProfile && !ok(podProfile)).map((c) => c.name);
      return unset.length ? `seccompProfile (pod or ${must(unset, 'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')})` : null;
    },
  },
  {
    id: 'sysctls',
    check: (spec) => {
      const bad = (spec.securityContext?.sysctls ?? []).map((s: any) => s.name).filter((n: string) => !SAFE_SYSCTLS.includes(n));
      return bad.length ? `forbidden sysctls (${bad.join(', ')})` : null;
    },
  },
];

/**
 * Why the restricted profile refuses a pod: `violates PodSecurity "restricted:latest": …`, or null.
 * Init and ephemeral containers count as containers.
 */
export function restrictedViolation(pod: any): string | null {
  const spec = pod.spec ?? {};
  const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
  const found = CHECKS.map(({ check }) => check(spec, containers)).filter((v): v is string => v !== null);
  return found.length ? `violates PodSecurity "restricted:latest": ${found.join(', ')}` : null;
}
