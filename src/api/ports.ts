/**
 * Published ports: normalization, and the (hostIP, hostPort, protocol) claims two containers must
 * not share. Pure; used by normalize, validation and the network driver.
 */
import type { ContainerSpec, PublishedPort } from './types.js';

/** The address every interface means: a claim on it overlaps every other address's. */
export const ANY_IPV4 = '0.0.0.0';

export function normalizePorts(ports: NonNullable<ContainerSpec['ports']>): PublishedPort[] {
  return ports.map((p) => {
    const out: PublishedPort = { containerPort: p.containerPort, protocol: p.protocol ?? 'TCP' };
    if (p.name !== undefined) out.name = p.name;
    if (p.hostPort !== undefined) out.hostPort = p.hostPort;
    if (p.hostIP !== undefined && p.hostIP !== '' && p.hostIP !== ANY_IPV4) out.hostIP = p.hostIP;
    return out;
  });
}

/** Ports actually published on the node (those with a hostPort). */
export function publishedOnly(ports: readonly PublishedPort[] | undefined): PublishedPort[] {
  return (ports ?? []).filter((p) => p.hostPort !== undefined);
}

/** "127.0.0.1:8080→80/TCP", "8080→80/UDP". */
export function formatPort(p: PublishedPort): string {
  return `${p.hostIP ? `${p.hostIP}:` : ''}${p.hostPort ?? '-'}→${p.containerPort}/${p.protocol}`;
}

export function formatPorts(ports: readonly PublishedPort[] | undefined): string {
  const list = publishedOnly(ports);
  return list.length ? list.map(formatPort).join(', ') : 'none';
}

/** Whether two published ports claim the same host socket (0.0.0.0 overlaps any address). */
export function sameClaim(a: PublishedPort, b: PublishedPort): boolean {
  if (a.hostPort === undefined || b.hostPort === undefined) return false;
  if (a.hostPort !== b.hostPort || a.protocol !== b.protocol) return false;
  const ia = a.hostIP ?? ANY_IPV4;
  const ib = b.hostIP ?? ANY_IPV4;
  return ia === ib || ia === ANY_IPV4 || ib === ANY_IPV4;
}

/** The published ports of two lists compare equal (order-insensitive). */
export function samePorts(a: readonly PublishedPort[] | undefined, b: readonly PublishedPort[] | undefined): boolean {
  const key = (p: PublishedPort) => `${p.hostIP ?? ''}|${p.hostPort ?? ''}|${p.containerPort}|${p.protocol}`;
  const ka = publishedOnly(a).map(key).sort();
  const kb = publishedOnly(b).map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}
