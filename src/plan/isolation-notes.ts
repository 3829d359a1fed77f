/** Words the plan adds when a replace changes how a container is isolated (pure). */
import type { NormalizedSpec } from '../api/types.js';
import { capabilitySet, DEFAULT_CAPABILITIES } from '../api/capabilities.js';

const short = (c: string) => c.replace(/^CAP_/, '');

/** Capabilities beyond the default set (a loosening, shown for every create), or none. */
function extraCapabilities(spec: NormalizedSpec): string[] {
  if (spec.security.privileged) return [];
  return capabilitySet(spec.security)
    .filter((c) => !DEFAULT_CAPABILITIES.includes(c))
    .map(short);
}

/** The capabilities a replace gives and takes: "; capabilities +NET_RAW -CHOWN". */
export function capabilityNote(had: NormalizedSpec, want: NormalizedSpec): string {
  if (had.security.privileged !== want.security.privileged)
    return want.security.privileged ? '; privileged on: every capability, no masks' : '; privileged off';
  const a = capabilitySet(had.security);
  const b = capabilitySet(want.security);
  const changes = [...b.filter((c) => !a.includes(c)).map((c) => `+${short(c)}`), ...a.filter((c) => !b.includes(c)).map((c) => `-${short(c)}`)];
  return changes.length ? `; capabilities ${changes.join(' ')}` : '';
}

/** hostUsers changed: what happens to the private area (it is re-owned, nothing is lost). */
export function userNamespaceNote(had: NormalizedSpec, want: NormalizedSpec): string {
  const was = had.security.hostUsers === false;
  const is = want.security.hostUsers === false;
  if (was === is) return '';
  return is
    ? "; user namespace on: root becomes an unprivileged node uid, the private area's files are re-owned to that range before the start (data kept)"
    : "; user namespace off: the private area's files are re-owned back to the node's ids before the start (data kept)";
}

/** How a new container will be isolated, when it differs from the defaults. */
export function isolationSummary(spec: NormalizedSpec): string {
  const parts: string[] = [];
  if (spec.security.privileged) parts.push('privileged: every capability, no masks');
  const extra = extraCapabilities(spec);
  if (extra.length) parts.push(`capabilities beyond the default set: ${extra.join(', ')}`);
  if (spec.security.hostUsers === false) parts.push('user namespace: root is an unprivileged node uid');
  if (spec.security.seccompProfile)
    parts.push(
      `seccomp ${spec.security.seccompProfile.type}${spec.security.seccompProfile.localhostProfile ? ` ${spec.security.seccompProfile.localhostProfile}` : ''}`,
    );
  return parts.length ? ` (${parts.join('; ')})` : '';
}
