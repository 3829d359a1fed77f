/** Words the plan adds when a replace changes how a container is isolated (pure). */
import type { NormalizedSpec } from '../api/types.js';
import { capabilitySet, DEFAULT_CAPABILITIES } from '../api/capabilities.js';
import type { IdRangeFact } from '../runtime/runtime.js';
import { idsText } from './user-namespace.js';

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

/** How a new container will be isolated, when it differs from the defaults. */
/**
 * `userns`: the range plan gives a hostUsers: false container; `nodeRootLoosens`: the node's
 * default is a user namespace, so hostUsers: true is a loosening to show.
 */
export function isolationSummary(spec: NormalizedSpec, userns: { idRange?: IdRangeFact; nodeRootLoosens?: boolean } = {}): string {
  const parts: string[] = [];
  if (spec.security.privileged) parts.push('privileged: every capability, no masks');
  const extra = extraCapabilities(spec);
  if (extra.length) parts.push(`capabilities beyond the default set: ${extra.join(', ')}`);
  if (spec.security.hostUsers === false) parts.push(`user namespace: root is node ${userns.idRange ? idsText(userns.idRange) : 'ids of its own range'}`);
  else if (userns.nodeRootLoosens) parts.push("no user namespace (hostUsers: true): root is the node's root");
  if (spec.security.seccompProfile)
    parts.push(
      `seccomp ${spec.security.seccompProfile.type}${spec.security.seccompProfile.localhostProfile ? ` ${spec.security.seccompProfile.localhostProfile}` : ''}`,
    );
  return parts.length ? ` (${parts.join('; ')})` : '';
}
