/** The network part of a running container's plan: published ports changed, or the network found broken. Pure. */
import type { DesiredContainer } from '../api/types.js';
import { formatPorts, samePorts } from '../api/ports.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { Action } from './actions.js';

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
  return [{ kind: 'ports', key: d.key, desired: d, from: [...from], to: [...to], reason: `ports ${formatPorts(from)} → ${formatPorts(to)} (in place)` }];
}
