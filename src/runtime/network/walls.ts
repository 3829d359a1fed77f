/**
 * The walls around bridge containers, as two nftables tables per bridge, both named
 * `acetate-<bridge>` (so `nft list tables` shows whose they are and a cleanup finds them by name):
 *
 *   table ip acetate-<bridge>       no packet from the bridge reaches the node's 127.0.0.0/8.
 *                                   portmap's `snat` sets route_localnet=1 on the bridge (so the
 *                                   node reaches a port published on 127.0.0.1), which also lets
 *                                   a container send to the node's loopback services through the
 *                                   gateway's MAC (CVE-2020-8558). Kubernetes' rule, on the input
 *                                   hook for traffic from this bridge: replies and DNAT'ed
 *                                   traffic (the node's own connections to 127.0.0.1:<hostPort>)
 *                                   still pass.
 *   table bridge acetate-<bridge>   a container's port sends only frames with its own MAC, and ARP
 *                                   and IPv4 with its own address: it cannot claim a neighbour's
 *                                   IP or MAC (ARP spoofing moved the node's neighbour entry).
 *                                   Other ether types (IPv6, so NDP; VLAN tags, VID 0 too) are dropped: the
 *                                   network is IPv4 only. Ports not enrolled (another bridge's, or
 *                                   one whose container is being set up) are not looked at.
 *
 * Not the bridge plugin's `macspoofchk`: it names its nftables chains after the CNI container id
 * and interface only (`cni-br-iface-<id>-eth0`), and acetate's ids (`<namespace>_<name>`) repeat
 * across instances on one node, so one instance's ADD would rewrite another's chain with its own
 * MAC and its DEL remove it; a long id also overflows nftables' 256-byte chain names. Here a port
 * is its veth's name, unique on the node.
 *
 * The tables stay while the bridge exists, by design: route_localnet stays set on the bridge after
 * the last container goes (portmap never clears it), and the next container's ADD must not open a
 * gap. They hold no per-container rule: a container is an element of two sets (its port, and
 * port . address . MAC), added after ADD and pruned after DEL (elements whose veth is gone).
 * Everything is one `nft -f` transaction, so a concurrent ADD never sees half a table.
 */
import { readdirSync } from 'node:fs';
import { exec } from '../../util/exec.js';
import type { CniResult } from './cni-exec.js';

const T = { timeoutMs: 30_000 };
/** Before the bridge's other prerouting filters (macspoofchk is at -300, ebtables' filter at -200). */
const BRIDGE_PRIORITY = -250;

export interface WalledPort {
  /** The host side of the container's veth (its port on the bridge). */
  veth: string;
  ip: string;
  /** The container side's MAC (eth0 in its namespace). */
  mac: string;
}

/** A bare nft identifier: bridge names are letters, digits, '.', '_' and '-' (node-config.ts IFNAME). */
export function wallsTable(bridge: string): string {
  return `acetate-${bridge.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

function q(s: string): string {
  // Interface names are checked (node-config.ts IFNAME); quoting is for nft's parser, not a shell.
  return `"${s.replace(/["\\]/g, '')}"`;
}

/** The nft script that creates the tables if missing and (re)writes their rules. Pure. */
export function wallsScript(bridge: string): string {
  const t = wallsTable(bridge);
  return [
    `add table ip ${t}`,
    `add chain ip ${t} loopback { type filter hook input priority -1; policy accept; }`,
    `flush chain ip ${t} loopback`,
    `add rule ip ${t} loopback iifname ${q(bridge)} ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 ct state != { established, related } ct status ! dnat counter drop comment "no container reaches the node's loopback (CVE-2020-8558)"`,
    `add table bridge ${t}`,
    `add set bridge ${t} ports { type ifname; }`,
    `add set bridge ${t} addresses { type ifname . ipv4_addr . ether_addr; }`,
    `add chain bridge ${t} ports { type filter hook prerouting priority ${BRIDGE_PRIORITY}; policy accept; }`,
    `flush chain bridge ${t} ports`,
    `add rule bridge ${t} ports iifname != @ports accept`,
    // Before the address checks: `ip saddr` also matches a tagged frame whose tag the bridge took
    // off into the skb (a priority-tagged VID 0 frame with the container's own address passed).
    `add rule bridge ${t} ports ether type { 8021q, 8021ad } counter drop comment "no VLAN tags, priority-tagged VID 0 included"`,
    `add rule bridge ${t} ports iifname . arp saddr ip . arp saddr ether @addresses iifname . arp saddr ip . ether saddr @addresses accept`,
    `add rule bridge ${t} ports iifname . ip saddr . ether saddr @addresses accept`,
    `add rule bridge ${t} ports counter drop comment "not its own address or MAC, or not IPv4/ARP"`,
    '',
  ].join('\n');
}

function element(p: WalledPort): { port: string; address: string } {
  return { port: q(p.veth), address: `${q(p.veth)} . ${p.ip} . ${p.mac}` };
}

async function nft(script: string): Promise<void> {
  await exec('nft', ['-f', '-'], { ...T, input: script });
}

/** The tables in place (idempotent): before the first ADD on the bridge. */
export async function ensureWalls(bridge: string): Promise<void> {
  await nft(wallsScript(bridge));
}

/** The tables ensured and the container's port enrolled, in one transaction: after its ADD. */
export async function enrollPort(bridge: string, p: WalledPort): Promise<void> {
  const t = wallsTable(bridge);
  const e = element(p);
  await nft(`${wallsScript(bridge)}add element bridge ${t} ports { ${e.port} }\nadd element bridge ${t} addresses { ${e.address} }\n`);
}

interface NftSetElem {
  concat?: unknown[];
}
interface NftSet {
  name: string;
  elem?: (string | NftSetElem | { elem: { val: unknown } })[];
}

function elemValue(e: unknown): unknown {
  return typeof e === 'object' && e !== null && 'elem' in e ? (e as { elem: { val: unknown } }).elem.val : e;
}

/** The elements of the bridge table's sets, as nft prints them ([] when the table is missing). */
export async function listEnrolled(bridge: string): Promise<{ ports: string[]; addresses: string[][] }> {
  const r = await exec('nft', ['-j', 'list', 'table', 'bridge', wallsTable(bridge)], { ...T, okExitCodes: [0, 1] });
  if (r.exitCode !== 0) return { ports: [], addresses: [] };
  const sets = (JSON.parse(r.stdout) as { nftables: { set?: NftSet }[] }).nftables.flatMap((o) => (o.set ? [o.set] : []));
  const elems = (name: string) => sets.find((s) => s.name === name)?.elem?.map(elemValue) ?? [];
  return {
    ports: elems('ports').filter((v): v is string => typeof v === 'string'),
    addresses: elems('addresses').map((v) => ((v as NftSetElem).concat ?? []).map(String)),
  };
}

/** The names of the bridge's ports (empty when it is gone). */
export function bridgePorts(bridge: string): Set<string> {
  try {
    return new Set(readdirSync(`/sys/class/net/${bridge}/brif`));
  } catch {
    return new Set();
  }
}

/**
 * Elements whose veth is no longer a port of the bridge removed (after a DEL, and by garbage
 * collection): a port is gone with its veth, whoever removed it. Returns how many ports went.
 */
export async function pruneWalls(bridge: string): Promise<number> {
  const { ports, addresses } = await listEnrolled(bridge);
  const live = bridgePorts(bridge);
  const t = wallsTable(bridge);
  const gonePorts = ports.filter((p) => !live.has(p));
  const goneAddrs = addresses.filter(([veth]) => veth !== undefined && !live.has(veth));
  if (!gonePorts.length && !goneAddrs.length) return 0;
  const lines = [
    ...gonePorts.map((p) => `delete element bridge ${t} ports { ${q(p)} }`),
    ...goneAddrs.map(([veth, ip, mac]) => `delete element bridge ${t} addresses { ${q(veth!)} . ${ip} . ${mac} }`),
  ];
  // An element someone else removed meanwhile fails the whole transaction: then one by one.
  await nft(`${lines.join('\n')}\n`).catch(async () => {
    for (const l of lines) await nft(`${l}\n`).catch(() => undefined);
  });
  return gonePorts.length;
}

/** What is missing of the walls for this port (for a deep check), or undefined. */
export async function wallsProblem(bridge: string, p: WalledPort): Promise<string | undefined> {
  const ip = await exec('nft', ['list', 'chain', 'ip', wallsTable(bridge), 'loopback'], { ...T, okExitCodes: [0, 1] });
  if (ip.exitCode !== 0 || !ip.stdout.includes('127.0.0.0/8')) return `the loopback wall of bridge ${bridge} (nft table ip ${wallsTable(bridge)}) is missing`;
  const { ports, addresses } = await listEnrolled(bridge);
  const mac = p.mac.toLowerCase();
  if (!ports.includes(p.veth) || !addresses.some(([v, a, m]) => v === p.veth && a === p.ip && m?.toLowerCase() === mac))
    return `port ${p.veth} (${p.ip}) is not enrolled in the address check of bridge ${bridge}`;
  return undefined;
}

/** Both tables removed (the bridge itself was deleted: tests' cleanup, `ip link del`). */
export async function removeWalls(bridge: string): Promise<void> {
  for (const family of ['ip', 'bridge']) await exec('nft', ['delete', 'table', family, wallsTable(bridge)], { ...T, okExitCodes: [0, 1] });
}

/** The port to enroll, from an ADD result: the host veth and the container side's MAC. */
export function walledPortOf(result: CniResult, ip: string, hostVeth: string | undefined): WalledPort | undefined {
  const mac = result.interfaces?.find((i) => i.sandbox)?.mac;
  return hostVeth && mac ? { veth: hostVeth, ip, mac } : undefined;
}
