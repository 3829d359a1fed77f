/** Words the plan adds when a replace changes how a container is isolated (pure). */
import type { NormalizedSpec } from '../api/types.js';

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
  if (spec.security.hostUsers === false) parts.push('user namespace: root is an unprivileged node uid');
  if (spec.security.seccompProfile)
    parts.push(
      `seccomp ${spec.security.seccompProfile.type}${spec.security.seccompProfile.localhostProfile ? ` ${spec.security.seccompProfile.localhostProfile}` : ''}`,
    );
  return parts.length ? ` (${parts.join('; ')})` : '';
}
