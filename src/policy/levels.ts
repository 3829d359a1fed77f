/**
 * Security levels for Containers, in the shape of Kubernetes' Pod Security Standards
 * (https://kubernetes.io/docs/concepts/security/pod-security-standards/): `privileged` (no rule),
 * `baseline` (no known privilege escalation: the node's files, network, ids and kernel stay the
 * node's) and `restricted` (baseline, plus non-root, every capability dropped, read-only hostPaths).
 *
 * checkSecurityLevel is pure: a Container's spec as written (so each violation names the field a
 * user wrote), the level, and what the node allows → the violations. The same rules are written in
 * CEL in controller/security-levels.yaml (a ValidatingAdmissionPolicy); test/unit/security-levels-cel
 * checks that both give the same verdict on the same samples. Rule names follow the check ids of
 * Kubernetes' pod-security admission (privileged, hostNamespaces, capabilities_baseline, …) where
 * one exists; hostUsers and hostPathReadOnly are acetate's own.
 */
import path from 'node:path';
import { capabilityName, DEFAULT_CAPABILITIES } from '../api/capabilities.js';
import { formatPath, isRecord, show, type PathSegment } from '../api/validation-issue.js';

export type SecurityLevel = 'privileged' | 'baseline' | 'restricted';
export const SECURITY_LEVELS: readonly SecurityLevel[] = ['privileged', 'baseline', 'restricted'];

export function isSecurityLevel(v: unknown): v is SecurityLevel {
  return typeof v === 'string' && (SECURITY_LEVELS as readonly string[]).includes(v);
}

/** What a node allows on top of the level's rules. */
export interface NodeSecurityPolicy {
  /** Host directories (absolute) a baseline or restricted Container may mount, with what lies below them. */
  allowedHostPaths: readonly string[];
  /**
   * True while this node runs a Container without a user namespace unless it asks for one
   * (hostUsers absent = the node's ids): then an absent hostUsers is refused like hostUsers: true.
   */
  hostUsersByDefault: boolean;
  /**
   * Where a hostPath leads once symlinks are resolved (undefined: it does not exist yet). Given by
   * the node (realpath), so a symlink under an allowed dir that points at /etc is refused; absent
   * in the cluster-side check, which sees only the path as written.
   */
  resolve?: (hostPath: string) => string | undefined;
}

export interface SecurityViolation {
  /** The rule, e.g. capabilities_baseline. */
  rule: string;
  /** The lowest level the rule belongs to. */
  level: Exclude<SecurityLevel, 'privileged'>;
  /** The field, from the Container object's root: ['spec', 'mounts', 0, 'hostPath']. */
  path: PathSegment[];
  /** Dotted form: spec.mounts[0].hostPath. */
  field: string;
  message: string;
}

/** Capabilities baseline allows to be added: the default set (Kubernetes' baseline list is the same 13). */
const BASELINE_ADD = new Set(DEFAULT_CAPABILITIES);

function violation(rule: string, level: SecurityViolation['level'], p: PathSegment[], message: string): SecurityViolation {
  return { rule, level, path: p, field: formatPath(p), message };
}

/** '/srv/data/' → '/srv/data'. */
function clean(p: string): string {
  return path.posix.normalize(p).replace(/(.)\/+$/, '$1');
}

/** Whether the host path p (clean, absolute) is one of dirs or below one (the start-time check uses it too: runtime/walls/hostpath-open.ts). */
export function hostPathAllowed(p: string, dirs: readonly string[]): boolean {
  return within(clean(p), dirs);
}

function within(p: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => {
    const dir = clean(d);
    return p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);
  });
}

/**
 * The rules of `level` that spec (a Container's spec as written, possibly not yet validated: each
 * rule checks types first) breaks. privileged: none.
 */
export function checkSecurityLevel(spec: unknown, level: SecurityLevel, node: NodeSecurityPolicy): SecurityViolation[] {
  if (level === 'privileged' || !isRecord(spec)) return [];
  // Rules are checked in this order, each independently (a capability beyond the default set breaks
  // capabilities_baseline and, under restricted, capabilities_restricted), as the CEL policy does.
  const out: SecurityViolation[] = [];
  const sc = isRecord(spec.securityContext) ? spec.securityContext : {};
  const at = (...p: PathSegment[]): PathSegment[] => ['spec', ...p];
  const scAt = (...p: PathSegment[]): PathSegment[] => at('securityContext', ...p);
  const caps = isRecord(sc.capabilities) ? sc.capabilities : {};
  const add = Array.isArray(caps.add) ? caps.add : [];
  const drop = Array.isArray(caps.drop) ? caps.drop : [];

  // ---- baseline
  if (sc.privileged === true)
    out.push(violation('privileged', 'baseline', scAt('privileged'), "a privileged container has every capability and the node's devices"));
  if (spec.network === 'host')
    out.push(violation('hostNamespaces', 'baseline', at('network'), "network: host shares the node's network namespace (its interfaces, ports and firewall)"));
  add.forEach((c, i) => {
    if (typeof c === 'string' && !BASELINE_ADD.has(capabilityName(c)))
      out.push(violation('capabilities_baseline', 'baseline', scAt('capabilities', 'add', i), `${show(c)} is beyond the default capability set`));
  });
  const seccomp = isRecord(sc.seccompProfile) ? sc.seccompProfile : undefined;
  if (seccomp?.type === 'Unconfined')
    out.push(violation('seccompProfile_baseline', 'baseline', scAt('seccompProfile', 'type'), 'Unconfined turns the system call filter off'));
  if (sc.hostUsers === true)
    out.push(violation('hostUsers', 'baseline', scAt('hostUsers'), "true runs the container with the node's ids: its root is the node's root"));
  else if (sc.hostUsers === undefined && node.hostUsersByDefault)
    out.push(
      violation(
        'hostUsers',
        'baseline',
        scAt('hostUsers'),
        "is not set, and this node runs such a container with its own ids (its root is the node's root): set hostUsers: false",
      ),
    );
  const mounts = Array.isArray(spec.mounts) ? spec.mounts : [];
  mounts.forEach((m, i) => {
    if (!isRecord(m) || typeof m.hostPath !== 'string' || !m.hostPath.startsWith('/')) return; // validation reports it
    const p = clean(m.hostPath);
    if (!within(p, node.allowedHostPaths)) {
      const allowed = node.allowedHostPaths.length
        ? `outside the node's allowed host paths (${node.allowedHostPaths.join(', ')})`
        : 'a host path, and this node allows none';
      out.push(violation('hostPathVolumes', 'baseline', at('mounts', i, 'hostPath'), `${show(m.hostPath)} is ${allowed}`));
      return;
    }
    const real = node.resolve?.(p);
    if (
      real !== undefined &&
      !within(
        real,
        node.allowedHostPaths.map((d) => node.resolve?.(clean(d)) ?? d),
      )
    )
      out.push(
        violation(
          'hostPathVolumes',
          'baseline',
          at('mounts', i, 'hostPath'),
          `${show(m.hostPath)} is a symlink to ${show(real)}, outside the node's allowed host paths`,
        ),
      );
  });
  if (level === 'baseline') return out;

  // ---- restricted
  if (sc.noNewPrivileges === false)
    out.push(violation('allowPrivilegeEscalation', 'restricted', scAt('noNewPrivileges'), 'false lets a setuid program gain privileges'));
  if (sc.runAsNonRoot !== true) out.push(violation('runAsNonRoot', 'restricted', scAt('runAsNonRoot'), 'must be true (the process must not run as uid 0)'));
  if (sc.runAsUser === 0) out.push(violation('runAsUser', 'restricted', scAt('runAsUser'), 'must not be 0'));
  if (!drop.some((c) => c === 'ALL'))
    out.push(violation('capabilities_restricted', 'restricted', scAt('capabilities', 'drop'), 'must include ALL (add back only NET_BIND_SERVICE)'));
  add.forEach((c, i) => {
    if (typeof c === 'string' && capabilityName(c) !== 'CAP_NET_BIND_SERVICE')
      out.push(violation('capabilities_restricted', 'restricted', scAt('capabilities', 'add', i), `${show(c)}: only NET_BIND_SERVICE may be added`));
  });
  mounts.forEach((m, i) => {
    if (isRecord(m) && typeof m.hostPath === 'string' && m.readOnly !== true)
      out.push(violation('hostPathReadOnly', 'restricted', at('mounts', i, 'readOnly'), 'a host path must be mounted read-only (readOnly: true)'));
  });
  return out;
}

/** What a violation says after its field, naming the level and rule (as plan, conditions and events show it). */
export function violationMessage(v: SecurityViolation, level: SecurityLevel): string {
  return `forbidden by security level ${level} (rule ${v.rule}): ${v.message}`;
}
