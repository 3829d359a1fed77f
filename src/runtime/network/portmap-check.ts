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

/** The nat table's CNI-HOSTPORT-DNAT chain as `iptables -S` prints it; undefined when there is no chain. */
export async function readPortRules(): Promise<string | undefined> {
  try {
    return (await exec('iptables', ['-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT'], { timeoutMs: 30_000 })).stdout;
  } catch {
    return undefined; // no chain at all
  }
}

/** The published ports of the container that have no DNAT rule in `rules` (readPortRules). */
export function missingPortRulesIn(rules: string | undefined, network: string, containerId: string, ports: readonly PublishedPort[]): string[] {
  const want = publishedOnly(ports);
  if (!want.length) return [];
  if (rules === undefined) return want.map((p) => `${p.hostPort}/${p.protocol}`);
  const tag = `dnat name: \\"${network}\\" id: \\"${containerId}\\"`;
  const mine = rules.split('\n').filter((l) => l.includes(tag));
  return want
    .filter((p) => !mine.some((r) => r.includes(`-p ${p.protocol.toLowerCase()} `) && new RegExp(`--dports (\\S+,)?${p.hostPort}(,|\\s|$)`).test(r)))
    .map((p) => `${p.hostPort}/${p.protocol}`);
}

export async function missingPortRules(network: string, containerId: string, ports: readonly PublishedPort[]): Promise<string[]> {
  if (!publishedOnly(ports).length) return [];
  return missingPortRulesIn(await readPortRules(), network, containerId, ports);
}
