/**
 * The node network of bridge containers: defaults, flags and environment, and checks.
 *
 * Defaults chosen not to meet the networks other container engines create on the same node:
 * Podman's cni-podman0/podman0 10.88.0.0/16 and the 10.89.x.0/24 networks `podman network create`
 * hands out, Docker's docker0 172.17.0.0/16 and its user networks in 172.18–31 and 192.168,
 * CRI-O's 10.85.0.0/16, nerdctl's 10.4.0.0/24, flannel's 10.244 and k3s's 10.42/10.43.
 */
import net from 'node:net';

export const DEFAULT_BRIDGE = 'acetate0';
export const DEFAULT_SUBNET = '10.90.0.0/16';

export interface NodeNetworkOptions {
  bridge?: string;
  subnet?: string;
}

/** A Linux interface name: at most 15 bytes, no '/', no whitespace, not '.' or '..'. */
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export class NodeNetworkConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeNetworkConfigError';
  }
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** Subnet, its prefix length and the first host address (the gateway). */
export function parseSubnet(subnet: string): { network: string; prefix: number; gateway: string; size: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(subnet);
  if (!m || !net.isIPv4(m[1]!)) throw new NodeNetworkConfigError(`subnet '${subnet}' is not an IPv4 CIDR such as ${DEFAULT_SUBNET}`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 29) throw new NodeNetworkConfigError(`subnet '${subnet}': the prefix length must be between /8 and /29`);
  const size = 2 ** (32 - prefix);
  const base = ipToInt(m[1]!);
  if (base % size !== 0) throw new NodeNetworkConfigError(`subnet '${subnet}' has host bits set (did you mean ${intToIp(base - (base % size))}/${prefix}?)`);
  return { network: m[1]!, prefix, gateway: intToIp(base + 1), size };
}

/** Whether an IPv4 address is inside the subnet. */
export function inSubnet(ip: string, subnet: string): boolean {
  const { network, size } = parseSubnet(subnet);
  const base = ipToInt(network);
  const n = ipToInt(ip);
  return n >= base && n < base + size;
}

/**
 * The node network from flags, else $ACETATE_NETWORK_BRIDGE / $ACETATE_NETWORK_SUBNET, else what
 * the instance last used (`saved`, <stateDir>/network/node.json: so `acetate get` without flags
 * sees the network `acetate run --network-subnet ...` set up), else the defaults. `name` is the
 * CNI network name, per acetate instance (its state dir's hash), so two instances' rules and
 * leases never meet.
 */
export function resolveNodeNetwork(
  opts: NodeNetworkOptions,
  instanceHash: string,
  saved: NodeNetworkOptions = {},
): { bridge: string; subnet: string; gateway: string; name: string } {
  const bridge = opts.bridge || process.env.ACETATE_NETWORK_BRIDGE || saved.bridge || DEFAULT_BRIDGE;
  const subnet = opts.subnet || process.env.ACETATE_NETWORK_SUBNET || saved.subnet || DEFAULT_SUBNET;
  if (!IFNAME.test(bridge)) throw new NodeNetworkConfigError(`bridge '${bridge}' is not an interface name (at most 15 letters, digits, '.', '_' or '-')`);
  const { gateway } = parseSubnet(subnet);
  return { bridge, subnet, gateway, name: `acetate-${instanceHash}` };
}
