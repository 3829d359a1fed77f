/**
 * The node's neighbour (ARP) entry of a container's address. An address is given again (a
 * container removed, another created; a create killed half way and made again) with another MAC;
 * the node's entry for it may still name the old MAC, REACHABLE for up to half a minute (the
 * kernel's base_reachable_time), so the node's packets went to a MAC no port has: the new
 * container was unreachable at its own address for that long (a chaos trial's finding). Nothing
 * corrects it sooner: the bridge plugin sends no gratuitous ARP here.
 */
import { readFileSync } from 'node:fs';
import { exec } from '../../util/exec.js';

/** Deletes the node's entry of `ip` on `bridge` when it names another MAC than `mac` (reads /proc/net/arp; a process only then). */
export async function forgetStaleNeighbour(bridge: string, ip: string, mac: string): Promise<void> {
  let table: string;
  try {
    table = readFileSync('/proc/net/arp', 'utf8');
  } catch {
    return;
  }
  // IP address, HW type, Flags, HW address, Mask, Device
  const stale = table
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .some((f) => f[0] === ip && f[5] === bridge && f[3] !== undefined && f[3].toLowerCase() !== mac.toLowerCase() && f[3] !== '00:00:00:00:00:00');
  if (stale) await exec('ip', ['neigh', 'del', ip, 'dev', bridge], { timeoutMs: 10_000, okExitCodes: [0, 1, 2] });
}
