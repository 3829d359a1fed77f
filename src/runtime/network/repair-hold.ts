/**
 * A hold on a container's outgoing frames while its network is repaired.
 *
 * A repair may give a running container a new veth (a tenant allowed NET_ADMIN can delete its
 * eth0). The new port is on the bridge before the walls enrol it (walls.ts: after the plugins'
 * ADD), and this kernel has no bridge match for "a port not enrolled yet" (CONFIG_NFT_BRIDGE_META
 * is not set). The container's processes are paused for the repair (update-in-place.ts), but its
 * kernel is not: TCP retransmissions of a socket bound to a neighbour's address, neighbour
 * probes, IPv6 DAD and MLD frames went out through the new port unwalled.
 *
 * So, for the length of the repair, a table inside the container's own network namespace drops
 * every packet leaving it: locally made IPv4/IPv6 (the output hook: TCP, ICMPv6 neighbour
 * discovery, MLD), forwarded ones (a tenant routing between interfaces of its own), and ARP (the
 * arp family's output hook: the kernel's neighbour probes). The tenant cannot remove it: its
 * processes are frozen until the hold is released. Not stopped by it: AF_PACKET frames (only a
 * process sends those, and none runs) and the bridge plugin's own gratuitous ARP for the
 * container's own address (harmless, and true).
 *
 * The table is recreated from nothing (a table of the same name the tenant made is deleted in
 * the same transaction). Its priority does not matter for what it stops (a drop in any base
 * chain is final, whatever a chain of the tenant's accepts before or after it); -1000 only makes
 * it the first to look. Loopback stays open: it never leaves the namespace, and the kernel's own
 * retransmissions there need not back off.
 */
import { exec } from '../../util/exec.js';

/** Its name in the container's namespace (`nft list tables` there shows it while a repair runs). */
const HOLD_TABLE = 'acetate_repair_hold';
const T = { timeoutMs: 30_000 };
/** Before conntrack (-200) and raw (-300): the first to look (see above). */
const PRIORITY = -1000;

/** The nft script that (re)creates the hold. Pure. */
function holdScript(): string {
  const drop = (hook: string, rules = '') => `  chain ${hook} {\n    type filter hook ${hook} priority ${PRIORITY}; policy drop;\n${rules}  }`;
  return [
    // `table` then `delete table`: one transaction, whether or not a table of that name exists.
    `table inet ${HOLD_TABLE}`,
    `delete table inet ${HOLD_TABLE}`,
    `table inet ${HOLD_TABLE} {`,
    drop('output', '    oif "lo" accept\n'),
    drop('forward'),
    '}',
    `table arp ${HOLD_TABLE}`,
    `delete table arp ${HOLD_TABLE}`,
    `table arp ${HOLD_TABLE} {`,
    drop('output'),
    '}',
    '',
  ].join('\n');
}

/** The network namespace of a running process, as a file nsenter takes. */
export function netnsOfPid(pid: number): string {
  return `/proc/${pid}/ns/net`;
}

function nftIn(netns: string, args: string[], input?: string) {
  // Only the network namespace: nft is the node's, run as the node's root (which may act in a
  // namespace of any container's user namespace).
  return exec('nsenter', [`--net=${netns}`, '--', 'nft', ...args], { ...T, ...(input !== undefined ? { input } : {}) });
}

/** Drops every packet leaving network namespace `netns` (a file: netnsOfPid, or a bound one) until releaseFrames. */
export async function holdFrames(netns: string): Promise<void> {
  await nftIn(netns, ['-f', '-'], holdScript());
}

/** Removes the hold (idempotent: no hold, nothing done). */
export async function releaseFrames(netns: string): Promise<void> {
  const script = [`table inet ${HOLD_TABLE}`, `delete table inet ${HOLD_TABLE}`, `table arp ${HOLD_TABLE}`, `delete table arp ${HOLD_TABLE}`, ''].join('\n');
  await nftIn(netns, ['-f', '-'], script);
}

/** Whether the hold (both its tables) is in place in network namespace `netns` (tests, and a look by hand). */
export async function framesHeld(netns: string): Promise<boolean> {
  const tables = new Set((await nftIn(netns, ['list', 'tables'])).stdout.split('\n').map((l) => l.trim()));
  return tables.has(`table inet ${HOLD_TABLE}`) && tables.has(`table arp ${HOLD_TABLE}`);
}
