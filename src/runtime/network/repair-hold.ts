/**
 * A hold on a container's outgoing frames while its network is repaired.
 *
 * A repair may give a running container a new veth (a tenant allowed NET_ADMIN can delete its
 * eth0). The new port is on the bridge before the walls enrol it (walls.ts: after the plugins'
 * ADD), and this kernel has no bridge match for "a port not enrolled yet" (CONFIG_NFT_BRIDGE_META
 * is not set). The container's processes are paused for the repair (update-in-place.ts), but its
 * kernel is not: TCP retransmissions of a socket bound to a neighbour's address, neighbour
 * probes, IPv6 DAD and MLD frames went out through the new port unwalled; and so did frames a
 * tenant queued before the pause (a slow qdisc on an interface of its own, drained during the
 * pause, its frames copied by a netdev `dup` rule to the ifindex the new eth0 would get): a
 * hostile tester took a neighbour's address on the node that way, 3 times out of 3.
 *
 * So, for the length of the repair, tables inside the container's own network namespace drop
 * what would leave it:
 *   netdev  egress of "eth0", by name (bound before the device exists: this kernel attaches a
 *           netdev chain to a device of that name when one appears, or is renamed so). Every
 *           frame the new eth0 would send, whatever made it: the kernel, a queue, a dup or fwd
 *           rule, a packet socket. The bridge plugin's own gratuitous ARP too (harmless to lose).
 *   inet    output and forward (loopback excepted: it never leaves the namespace), and
 *   arp     output: the same again at the IP and ARP layers, for any other way out.
 * A frozen tenant cannot remove them. Their name is new for every repair (acetate_hold_<random>,
 * kept in the repair's marker), so a tenant cannot make a table of that name beforehand (one
 * flagged `owner` by a socket of its own could be neither replaced nor deleted). Their priority
 * does not matter for what they stop: a drop in any base chain is final, whatever a chain of the
 * tenant's accepts before or after it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exec } from '../../util/exec.js';
import { IFNAME } from './cni-list.js';
import { bridgePorts, listEnrolled } from './walls.js';

const PREFIX = 'acetate_hold_';
const FAMILIES = ['netdev', 'inet', 'arp'] as const;
const T = { timeoutMs: 30_000 };
/** Before conntrack (-200) and raw (-300): the first to look (see above). */
const PRIORITY = -1000;

/** A hold's name: new for each repair. */
export function newHoldName(): string {
  return `${PREFIX}${randomBytes(6).toString('hex')}`;
}

/** Only names this module makes are ever put into an nft script (a marker file is read back). */
export function isHoldName(name: unknown): name is string {
  return typeof name === 'string' && /^acetate_hold_[0-9a-f]{12}$/.test(name);
}

function holdScript(name: string): string {
  const chain = (hook: string, opts: { device?: string; rules?: string } = {}) =>
    [
      `  chain ${hook} {`,
      `    type filter hook ${hook}${opts.device ? ` device "${opts.device}"` : ''} priority ${PRIORITY}; policy drop;`,
      ...(opts.rules ? [opts.rules] : []),
      '  }',
    ].join('\n');
  const body = {
    netdev: chain('egress', { device: IFNAME }),
    inet: `${chain('output', { rules: '    oif "lo" accept' })}\n${chain('forward')}`,
    arp: chain('output'),
  };
  // `table` then `delete table`: one transaction, whether or not a table of that name exists.
  return FAMILIES.map((f) => `table ${f} ${name}\ndelete table ${f} ${name}\ntable ${f} ${name} {\n${body[f]}\n}\n`).join('');
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

/** Drops what would leave network namespace `netns` (a file: netnsOfPid, or a bound one) until releaseFrames. One transaction. */
export async function holdFrames(netns: string, name: string): Promise<void> {
  if (!isHoldName(name)) throw new Error(`not a hold's name: ${name}`);
  await nftIn(netns, ['-f', '-'], holdScript(name));
}

/** Removes holds (idempotent: a hold not there, nothing done). */
export async function releaseFrames(netns: string, names: readonly string[]): Promise<void> {
  const valid = names.filter(isHoldName);
  if (!valid.length) return;
  await nftIn(netns, ['-f', '-'], valid.flatMap((n) => FAMILIES.map((f) => `table ${f} ${n}\ndelete table ${f} ${n}\n`)).join(''));
}

/** The holds in place in network namespace `netns` (each with its three tables): tests, and a look by hand. */
export async function holdsIn(netns: string): Promise<string[]> {
  const tables = (await nftIn(netns, ['list', 'tables'])).stdout.split('\n').map((l) => l.trim().split(' '));
  const names = new Set(tables.flatMap(([, , n]) => (n?.startsWith(PREFIX) ? [n] : [])));
  return [...names].filter((n) => FAMILIES.every((f) => tables.some(([t, family, x]) => t === 'table' && family === f && x === n))).sort();
}

/**
 * The ports of `bridge` that lead into network namespace `netns` and are not enrolled in the
 * walls (walls.ts): the new veth of an ADD not finished, or an interrupted repair's. A container
 * with one must not run: its frames would cross unwalled. Found from inside (every veth of the
 * namespace whose peer is in another: that peer's ifindex) and matched against the bridge's ports.
 */
export async function unwalledPortsInto(netns: string, bridge: string): Promise<string[]> {
  const r = await exec('nsenter', [`--net=${netns}`, '--', 'ip', '-j', 'link', 'show'], T);
  const links = JSON.parse(r.stdout || '[]') as { link_index?: number; link_netnsid?: number }[];
  const peers = new Set(links.flatMap((l) => (l.link_index !== undefined && l.link_netnsid !== undefined ? [l.link_index] : [])));
  if (!peers.size) return [];
  const enrolled = new Set((await listEnrolled(bridge)).ports);
  const out: string[] = [];
  for (const port of bridgePorts(bridge)) {
    if (enrolled.has(port)) continue;
    const ifindex = Number(readFileOr(`/sys/class/net/${port}/ifindex`));
    if (peers.has(ifindex)) out.push(port);
  }
  return out;
}

function readFileOr(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}
