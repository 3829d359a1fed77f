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
  if (prefix > 32) throw new NodeNetworkConfigError(`subnet '${subnet}': a prefix length is at most /32 (and /29 here)`);
  const size = 2 ** (32 - prefix);
  const base = ipToInt(m[1]!);
  const reserved = RESERVED.find((r) => overlaps(base - (base % size), size, ipToInt(r.network), 2 ** (32 - r.prefix)));
  if (reserved)
    throw new NodeNetworkConfigError(
      `subnet '${subnet}' overlaps ${reserved.network}/${reserved.prefix}, ${reserved.what}: pick a private range such as ${DEFAULT_SUBNET}`,
    );
  if (prefix > 29)
    throw new NodeNetworkConfigError(
      `subnet '${subnet}' is too small: a /${prefix} leaves ${Math.max(0, size - 3)} address(es) for containers after the network, gateway and broadcast addresses; use /29 or larger`,
    );
  if (prefix < 8) throw new NodeNetworkConfigError(`subnet '${subnet}' is too large: the prefix length must be between /8 and /29`);
  if (base % size !== 0) throw new NodeNetworkConfigError(`subnet '${subnet}' has host bits set (did you mean ${intToIp(base - (base % size))}/${prefix}?)`);
  return { network: m[1]!, prefix, gateway: intToIp(base + 1), size };
}

/** IPv4 ranges a container subnet must not meet (RFC 6890): the kernel treats them specially. */
const RESERVED = [
  { network: '0.0.0.0', prefix: 8, what: '"this network" (RFC 1122)' },
  { network: '127.0.0.0', prefix: 8, what: "the node's loopback" },
  { network: '169.254.0.0', prefix: 16, what: 'link-local addresses' },
  { network: '224.0.0.0', prefix: 4, what: 'multicast' },
  { network: '240.0.0.0', prefix: 4, what: 'reserved addresses and the broadcast address 255.255.255.255' },
];

function overlaps(aBase: number, aSize: number, bBase: number, bSize: number): boolean {
  return aBase < bBase + bSize && bBase < aBase + aSize;
}

/** One IPv4 route of the node (from /proc/net/route, see node-routes.ts). */
export interface NodeRoute {
  dev: string;
  /** e.g. 192.0.2.0/24; 0.0.0.0/0 is the default route. */
  dst: string;
}

/**
 * A node route the subnet would meet, other than the default route and the routes through the
 * bridge itself (its own subnet, once made): traffic to those addresses would go to the
 * containers, or the containers could not reach them.
 */
export function overlappingRoute(subnet: string, bridge: string, routes: readonly NodeRoute[]): NodeRoute | undefined {
  const { network, size } = parseSubnet(subnet);
  const base = ipToInt(network);
  return routes.find((r) => {
    const [dst, len] = r.dst.split('/');
    const prefix = Number(len);
    if (r.dev === bridge || prefix === 0) return false;
    return overlaps(base, size, ipToInt(dst!), 2 ** (32 - prefix));
  });
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

/**
 * The flags and environment checked before anything is read or written (validate, plan, apply,
 * run...): the first problem, naming the flag (or variable) it came from. `routes`: the node's,
 * to refuse a subnet that meets one of them.
 */
export function nodeNetworkFlagProblem(opts: NodeNetworkOptions, env: NodeJS.ProcessEnv, routes: readonly NodeRoute[]): string | undefined {
  const bridgeFrom = opts.bridge ? '--network-bridge' : env.ACETATE_NETWORK_BRIDGE ? 'ACETATE_NETWORK_BRIDGE' : undefined;
  const subnetFrom = opts.subnet ? '--network-subnet' : env.ACETATE_NETWORK_SUBNET ? 'ACETATE_NETWORK_SUBNET' : undefined;
  const bridge = opts.bridge || env.ACETATE_NETWORK_BRIDGE || DEFAULT_BRIDGE;
  const subnet = opts.subnet || env.ACETATE_NETWORK_SUBNET;
  if (bridgeFrom && !IFNAME.test(bridge)) return `${bridgeFrom}: '${bridge}' is not an interface name (at most 15 letters, digits, '.', '_' or '-')`;
  if (!subnet || !subnetFrom) return undefined;
  try {
    parseSubnet(subnet);
  } catch (err) {
    return `${subnetFrom}: ${(err as Error).message}`;
  }
  const r = overlappingRoute(subnet, bridge, routes);
  if (r)
    return `${subnetFrom}: subnet '${subnet}' overlaps the node's route ${r.dst} dev ${r.dev}: containers could not reach those addresses; pick another subnet`;
  return undefined;
}
