/**
 * A published port's hostIP must be an address of this node: portmap would write a DNAT rule for
 * any address, and the container would be shown Running with a port that can never receive
 * traffic. Docker refuses the same at bind(2) ("cannot assign requested address"); acetate
 * refuses it at validation, naming the field, so `validate`, `plan`, `apply` and `run` agree.
 */
import os from 'node:os';
import net from 'node:net';
import type { DesiredContainer } from '../api/types.js';

/** The node's local addresses: each interface's, and whole loopback ranges (127.0.0.0/8 binds). */
export interface NodeAddresses {
  addresses: string[];
  /** CIDRs every address of which is local (the loopback interface's). */
  localRanges: string[];
}

/** How long a look at the node's interfaces is reused by liveNodeAddresses. */
const ADDRESSES_FRESH_MS = 1_000;

/**
 * The node's addresses as they are now (read again when older than a second): for a process that
 * lives on (acetate run), whose node gains addresses after it starts (its own first bridge's
 * gateway, a DHCP lease). A result that depends on them records what it checked (hostIPVerdicts).
 */
export function liveNodeAddresses(now: () => number = Date.now, read: () => NodeAddresses = detectNodeAddresses): () => NodeAddresses {
  let last: { at: number; value: NodeAddresses } | undefined;
  return () => {
    const t = now();
    if (last && t - last.at < ADDRESSES_FRESH_MS && t >= last.at) return last.value;
    try {
      last = { at: t, value: read() };
    } catch {
      // getifaddrs(3) failed (EMFILE, ENOMEM): the last look stands, or only loopback before any
      // (read again at the next call); a parse or a re-list never fails on it.
      return last?.value ?? { addresses: ['127.0.0.1', '::1'], localRanges: ['127.0.0.1/8'] };
    }
    return last.value;
  };
}

export function detectNodeAddresses(): NodeAddresses {
  const out: NodeAddresses = { addresses: [], localRanges: [] };
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      out.addresses.push(a.address);
      if (a.internal && a.family === 'IPv4' && a.cidr) out.localRanges.push(a.cidr);
    }
  }
  return out;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function inRange(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/');
  if (!net.isIPv4(ip) || !net.isIPv4(base ?? '')) return false;
  const size = 2 ** (32 - Number(len));
  const start = ipv4ToInt(base!) - (ipv4ToInt(base!) % size);
  const n = ipv4ToInt(ip);
  return n >= start && n < start + size;
}

export function isNodeAddress(ip: string, node: NodeAddresses): boolean {
  return node.addresses.includes(ip) || node.localRanges.some((r) => inRange(ip, r));
}

type Port = NonNullable<DesiredContainer['spec']['ports']>[number];

/** The address a published port must be able to listen on, if it names one (not 0.0.0.0). */
function checkedHostIP(p: Port): string | undefined {
  return p.hostPort !== undefined && p.hostIP && p.hostIP !== '0.0.0.0' ? p.hostIP : undefined;
}

/** The hostIPs of a container's published ports (not 0.0.0.0): what unassignableHostIP looks at. */
export function publishedHostIPs(d: DesiredContainer): string[] {
  return (d.spec.ports ?? []).flatMap((p) => checkedHostIP(p) ?? []);
}

/**
 * Whether each of these hostIPs is the node's: what a cached result that checked them depended on
 * (manifest-cache.ts uses it only while every verdict is still the same).
 */
export function hostIPVerdicts(ips: Iterable<string>, node: NodeAddresses): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const ip of ips) out[ip] = isNodeAddress(ip, node);
  return out;
}

/** Whether every recorded verdict still holds for the node's addresses now. */
export function sameHostIPVerdicts(recorded: Record<string, boolean>, node: NodeAddresses): boolean {
  for (const [ip, was] of Object.entries(recorded)) if (isNodeAddress(ip, node) !== was) return false;
  return true;
}

/** The first published port whose hostIP is not an address of this node: its index and why. */
export function unassignableHostIP(d: DesiredContainer, node: NodeAddresses): { index: number; message: string } | undefined {
  const ports = d.spec.ports ?? [];
  for (let i = 0; i < ports.length; i++) {
    const ip = checkedHostIP(ports[i]!);
    if (!ip || isNodeAddress(ip, node)) continue;
    return {
      index: i,
      message: `${ip} is not an address of this node: cannot assign requested address (a published port can only listen on the node's own addresses, or on 0.0.0.0)`,
    };
  }
  return undefined;
}
