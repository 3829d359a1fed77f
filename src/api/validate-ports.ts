/** Rules about published ports that the CRD schema cannot say (checked after it, on any input). */
import { issue, type ValidationIssue } from './validation-issue.js';
import { ANY_IPV4, sameClaim } from './ports.js';
import type { ContainerSpec, PublishedPort } from './types.js';

function isRecord(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

export function portIssues(spec: ContainerSpec): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const ports = Array.isArray(spec.ports) ? (spec.ports as unknown[]) : [];
  const network = typeof spec.network === 'string' ? spec.network : 'none';
  const seen: { port: PublishedPort; i: number }[] = [];
  const names = new Map<string, number>();
  ports.forEach((p, i) => {
    if (!isRecord(p)) return;
    const hostPort = typeof p.hostPort === 'number' && Number.isInteger(p.hostPort) ? p.hostPort : undefined;
    if (hostPort !== undefined && network !== 'bridge') {
      out.push(issue(['spec', 'ports', i, 'hostPort'], `publishing a port on the node needs network: bridge (network is ${network})`));
    }
    if (typeof p.name === 'string') {
      if (names.has(p.name)) out.push(issue(['spec', 'ports', i, 'name'], `'${p.name}' is already the name of ports[${names.get(p.name)}]`));
      else names.set(p.name, i);
    }
    if (hostPort === undefined) return;
    const protocol = p.protocol === 'UDP' ? 'UDP' : 'TCP';
    const hostIP = typeof p.hostIP === 'string' && p.hostIP !== ANY_IPV4 ? p.hostIP : undefined;
    const port: PublishedPort = { containerPort: Number(p.containerPort), hostPort, protocol, ...(hostIP ? { hostIP } : {}) };
    const clash = seen.find((s) => sameClaim(s.port, port));
    if (clash) out.push(issue(['spec', 'ports', i, 'hostPort'], `${hostIP ?? ANY_IPV4}:${hostPort}/${protocol} is already published by ports[${clash.i}]`));
    seen.push({ port, i });
  });
  return out;
}
