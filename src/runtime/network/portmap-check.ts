/**
 * CHECK of published ports. portmap 1.1.1 (Debian 12) cannot CHECK an IPv4-only container on a
 * node where ip6tables works: it looks for the container's DNAT chain in ip6tables too, where it
 * never made one ("could not check ipv6 dnat: chain CNI-DN-… not found"). So acetate checks what
 * portmap ADD makes for each published port instead: the rule of the container (its comment holds
 * the network name and the container id) in the nat table's CNI-HOSTPORT-DNAT chain.
 */
import { publishedOnly } from '../../api/ports.js';
import type { PublishedPort } from '../../api/types.js';
import { exec } from '../../util/exec.js';

export async function missingPortRules(network: string, containerId: string, ports: readonly PublishedPort[]): Promise<string[]> {
  const want = publishedOnly(ports);
  if (!want.length) return [];
  let text: string;
  try {
    ({ stdout: text } = await exec('iptables', ['-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT'], { timeoutMs: 30_000 }));
  } catch {
    return want.map((p) => `${p.hostPort}/${p.protocol}`); // no chain at all
  }
  const tag = `dnat name: \\"${network}\\" id: \\"${containerId}\\"`;
  const rules = text.split('\n').filter((l) => l.includes(tag));
  return want
    .filter((p) => !rules.some((r) => r.includes(`-p ${p.protocol.toLowerCase()} `) && new RegExp(`--dports (\\S+,)?${p.hostPort}(,|\\s|$)`).test(r)))
    .map((p) => `${p.hostPort}/${p.protocol}`);
}
