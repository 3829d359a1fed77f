/**
 * The bridge plugin removes a container's masquerade rules only with the addresses it reads from
 * the container's interface: when the namespace is already gone (after a reboot, a crash, or a
 * namespace removed by hand) its DEL succeeds and leaves them. acetate then removes, itself, the
 * nat rules whose comment names its network and the container (`name: "<net>" id: "<id>"`, which
 * the bridge and portmap plugins put on every rule they make), and the per-container chains those
 * rules jumped to or lived in (CNI-<hash>, CNI-DN-<hash>: named after the network and the
 * container, so no one else's), flushed and deleted once nothing jumps to them. The chains the
 * plugins share (CNI-HOSTPORT-*, CNI-FORWARD, CNI-ADMIN) stay.
 */
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
