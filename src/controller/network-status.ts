/** A container's network as `acetate get`/`describe` and the status record show it. */
import { formatPorts } from '../api/ports.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { NetworkSummary } from '../contracts/status-record.js';

export function networkSummary(a: ActualContainer): NetworkSummary {
  const out: NetworkSummary = { mode: a.applied.spec.network, ports: formatPorts(a.network?.ports ?? a.applied.spec.ports) };
  if (a.network?.ip) out.ip = a.network.ip;
  if (a.network?.netnsPath) out.netns = a.network.netnsPath;
  if (a.network?.problem) out.problem = a.network.problem;
  return out;
}
