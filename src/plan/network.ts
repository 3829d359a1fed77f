/** The network part of a running container's plan: published ports changed, or the network found broken. Pure. */
import type { DesiredContainer, PublishedPort } from '../api/types.js';
import { formatPorts, publishedOnly, samePorts } from '../api/ports.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { Action } from './actions.js';

/** The same mapping: host socket and container port. */
function sameMapping(a: PublishedPort, b: PublishedPort): boolean {
  return a.hostPort === b.hostPort && (a.hostIP ?? '') === (b.hostIP ?? '') && a.containerPort === b.containerPort && a.protocol === b.protocol;
}

export function planNetwork(d: DesiredContainer, a: ActualContainer): Action[] {
  if (d.spec.network !== 'bridge' || a.applied.spec.network !== 'bridge') return [];
  const net = a.network;
  if (net?.problem) {
    return [{ kind: 'network', key: d.key, desired: d, reason: `${net.problem}: rebuilding it in place (same address, same pid)` }];
  }
  // The ports in force are what the network says, not the record: a change that failed is retried.
  const from = net?.ports ?? a.applied.spec.ports ?? [];
  const to = d.spec.ports ?? [];
  if (samePorts(from, to)) return [];
  const dropped = publishedOnly(from).filter((p) => !to.some((q) => sameMapping(p, q)));
  const added = publishedOnly(to).filter((q) => !from.some((p) => sameMapping(p, q)));
  const claim: Action = {
    kind: 'ports',
    key: d.key,
    desired: d,
    from: [...from],
    to: [...to],
    reason: `ports ${formatPorts(from)} → ${formatPorts(to)} (in place)`,
  };
  if (!dropped.length || !added.length) return [claim];
  // Release first: another container of the same edit may claim what this one drops (a swap, a
  // chain), and this one may claim what another drops. The release step publishes what it keeps.
  const kept = to.filter((q) => q.hostPort === undefined || from.some((p) => sameMapping(p, q)));
  const release: Action = {
    kind: 'ports',
    key: d.key,
    desired: { ...d, spec: { ...d.spec, ports: kept } },
    from: [...from],
    to: kept,
    releasesPorts: true,
    reason: `ports ${formatPorts(dropped)} released first (in place), then ${formatPorts(added)} claimed`,
  };
  return [release, { ...claim, from: kept, reason: `ports ${formatPorts(kept)} → ${formatPorts(to)} (in place)` }];
}
