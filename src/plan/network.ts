/** The network part of a running container's plan: published ports changed, or the network found broken. Pure. */
import type { DesiredContainer, PublishedPort } from '../api/types.js';
import { formatPorts, publishedOnly, samePorts } from '../api/ports.js';
import type { ActualContainer, NodeNetworkFacts } from '../runtime/runtime.js';
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

/** A change of the node network (`--network-subnet`/`--network-bridge`), as plan shows it. */
export interface NetworkChange {
  /** e.g. "subnet 10.90.0.0/16 → 10.91.0.0/16". */
  change: string;
  /** Containers hold addresses on the old network: bridge containers are left alone, nothing is rewritten. */
  refused: boolean;
  /** What plan prints, in words. */
  message: string;
}

export function planNetworkChange(facts: NodeNetworkFacts | undefined): NetworkChange | undefined {
  const from = facts?.recorded;
  if (!facts || !from) return undefined;
  const to = facts.wanted;
  const parts: string[] = [];
  if (from.bridge !== to.bridge) parts.push(`bridge ${from.bridge} → ${to.bridge}`);
  if (from.subnet !== to.subnet) parts.push(`subnet ${from.subnet} → ${to.subnet}`);
  if (!parts.length) return undefined;
  const change = parts.join(', ');
  const n = facts.holders.length;
  if (!n) {
    return {
      change,
      refused: false,
      message: `node network: ${change} (no container holds an address on the old one: the next bridge container sets the new one up)`,
    };
  }
  const shown = facts.holders.slice(0, 5).join(', ') + (n > 5 ? `, and ${n - 5} more` : '');
  return {
    change,
    refused: true,
    message:
      `node network: ${change} refused: ${n} container(s) hold addresses on the old one (${shown}); ` +
      `bridge containers are left as they are and the node's network record is kept. Destroy them (or set their network to none) first, ` +
      `or keep --network-bridge ${from.bridge} --network-subnet ${from.subnet}`,
  };
}
