/**
 * The bridge plugin removes a container's masquerade rules only with the addresses it reads from
 * the container's interface: when the namespace is already gone (after a reboot, a crash, or a
 * namespace removed by hand) its DEL succeeds and leaves them. acetate then removes, itself, the
 * nat rules whose comment names its network and the container (`name: "<net>" id: "<id>"`, which
 * the bridge and portmap plugins put on every rule they make), and the per-container chains those
 * rules jumped to or lived in (CNI-<hash>, CNI-DN-<hash>: named after the network and the
 * container, so no one else's), flushed and deleted once nothing jumps to them. The chains the
 * plugins share (CNI-HOSTPORT-*, CNI-FORWARD, CNI-ADMIN) stay.
 *
 * The same holds when a plugin was killed half way through its DEL (or hit its timeout): the
 * bridge plugin releases the address and deletes the veth before it removes the masquerade rules,
 * so its retry finds no address to remove them by. So every DEL is followed by this sweep, and the
 * firewall plugin's two accept rules of the address (in CNI-FORWARD, without a comment: found by
 * the address) go the same way. Garbage collection finds the owners of rules (ruleOwners, and
 * forwardAddresses for the firewall's) that no longer exist.
 */
import { inSubnet } from './node-config.js';
import { exec } from '../../util/exec.js';

const SHARED = /^CNI-(HOSTPORT-|FORWARD$|ADMIN$)/;
const T = { timeoutMs: 30_000 };

function tokens(rule: string): string[] {
  return (rule.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));
}

/** Rules of one container (`containerId`), or of every container of the network (undefined). */
export async function sweepContainerRules(network: string, containerId?: string): Promise<number> {
  const { stdout } = await exec('iptables-save', ['-t', 'nat'], T);
  const tag = containerId === undefined ? `name: \\"${network}\\" id: \\"` : `name: \\"${network}\\" id: \\"${containerId}\\"`;
  const ours = stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes(tag));
  const chains = new Set<string>();
  for (const rule of ours.reverse()) {
    const args = tokens(rule.slice(3));
    const jump = args[args.indexOf('-j') + 1];
    if (jump?.startsWith('CNI-') && !SHARED.test(jump)) chains.add(jump);
    if (args[0]?.startsWith('CNI-') && !SHARED.test(args[0])) chains.add(args[0]);
    await exec('iptables', ['-w', '-t', 'nat', '-D', ...args], T).catch(() => undefined);
  }
  if (chains.size) {
    const now = (await exec('iptables-save', ['-t', 'nat'], T)).stdout;
    for (const chain of chains) {
      if (now.includes(`-j ${chain}\n`) || now.includes(`-j ${chain} `)) continue; // still used
      await exec('iptables', ['-w', '-t', 'nat', '-F', chain], T).catch(() => undefined);
      await exec('iptables', ['-w', '-t', 'nat', '-X', chain], T).catch(() => undefined);
    }
  }
  return ours.length;
}

/** Container ids named by the nat rules of the network (the plugins' comments). */
export async function ruleOwners(network: string): Promise<Set<string>> {
  const { stdout } = await exec('iptables-save', ['-t', 'nat'], T);
  const out = new Set<string>();
  const re = new RegExp(`name: \\\\"${network.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\\\" id: \\\\"([^"\\\\]+)\\\\"`);
  for (const l of stdout.split('\n')) {
    const m = l.startsWith('-A ') ? re.exec(l) : null;
    if (m) out.add(m[1]!);
  }
  return out;
}

/** CNI-FORWARD's accept rules (the firewall plugin's) of addresses in the subnet, by address. */
async function forwardRules(subnet: string): Promise<Map<string, string[][]>> {
  const { stdout } = await exec('iptables', ['-w', '-t', 'filter', '-S', 'CNI-FORWARD'], T).catch(() => ({ stdout: '' }));
  const out = new Map<string, string[][]>();
  for (const l of stdout.split('\n')) {
    const m = /^-A CNI-FORWARD (?:-s|-d) (\d+\.\d+\.\d+\.\d+)\/32 .*-j ACCEPT$/.exec(l);
    if (!m || !inSubnet(m[1]!, subnet)) continue;
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), tokens(l.slice(3))]);
  }
  return out;
}

/** Addresses of the subnet with accept rules in CNI-FORWARD. */
export async function forwardAddresses(subnet: string): Promise<string[]> {
  return [...(await forwardRules(subnet)).keys()];
}

/** Removes the firewall plugin's accept rules of these addresses (every copy). */
export async function sweepForwardRules(subnet: string, ips: readonly string[]): Promise<number> {
  if (!ips.length) return 0;
  const rules = await forwardRules(subnet);
  let n = 0;
  for (const ip of ips) {
    for (const args of rules.get(ip) ?? []) {
      await exec('iptables', ['-w', '-t', 'filter', '-D', ...args], T).catch(() => undefined);
      n++;
    }
  }
  return n;
}
