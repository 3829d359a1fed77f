/**
 * The bridge plugin removes a container's masquerade rules only with the addresses it reads from
 * the container's interface: when the namespace is already gone (after a reboot, a crash, or a
 * namespace removed by hand) its DEL succeeds and leaves them. acetate then removes, itself, the
 * nat rules whose comment names its network and the container (`name: "<net>" id: "<id>"`, which
 * the bridge and portmap plugins put on every rule they make), and the per-container chains those
 * rules used once they are empty. The chains the plugins share (CNI-HOSTPORT-*) stay.
 */
import { exec } from '../../util/exec.js';

const SHARED = /^CNI-(HOSTPORT-|FORWARD$|ADMIN$)/;

function tokens(rule: string): string[] {
  return (rule.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));
}

export async function sweepContainerRules(network: string, containerId: string): Promise<number> {
  const { stdout } = await exec('iptables-save', ['-t', 'nat'], { timeoutMs: 30_000 });
  const tag = `name: \\"${network}\\" id: \\"${containerId}\\"`;
  const lines = stdout.split('\n');
  const ours = lines.filter((l) => l.startsWith('-A ') && l.includes(tag));
  const chains = new Set<string>();
  for (const rule of ours.reverse()) {
    const args = tokens(rule.slice(3));
    const jump = args[args.indexOf('-j') + 1];
    if (jump?.startsWith('CNI-') && !SHARED.test(jump)) chains.add(jump);
    if (args[0]?.startsWith('CNI-') && !SHARED.test(args[0])) chains.add(args[0]);
    await exec('iptables', ['-w', '-t', 'nat', '-D', ...args], { timeoutMs: 30_000 }).catch(() => undefined);
  }
  for (const chain of chains) {
    const { stdout: left } = await exec('iptables', ['-w', '-t', 'nat', '-S', chain], { timeoutMs: 30_000 }).catch(() => ({ stdout: 'x\nx' }));
    if (left.trim().split('\n').length > 1) continue; // still used: only `-N chain` means empty
    const referenced = (await exec('iptables-save', ['-t', 'nat'], { timeoutMs: 30_000 })).stdout.includes(`-j ${chain}`);
    if (!referenced) await exec('iptables', ['-w', '-t', 'nat', '-X', chain], { timeoutMs: 30_000 }).catch(() => undefined);
  }
  return ours.length;
}
