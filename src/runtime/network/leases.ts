/**
 * host-local's leases, read directly: `<dataDir>/<network>/<ip>`, a file whose first line is the
 * container id (then the interface name). What lets acetate find the address of a container whose
 * network.json is gone (a crash between ADD and writing it) and the containers that no longer exist.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { readSmallFileNow } from '../../util/small-file.js';
import type { CniResult } from './cni-exec.js';
import { parseSubnet } from './node-config.js';

export function readLeases(dataDir: string, network: string): { ip: string; id: string }[] {
  const dir = path.join(dataDir, network);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { ip: string; id: string }[] = [];
  for (const n of names) {
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(n)) continue;
    try {
      out.push({ ip: n, id: readSmallFileNow(path.join(dir, n)).split(/\r?\n/)[0]!.trim() });
    } catch {
      /* released meanwhile */
    }
  }
  return out;
}

/** The prevResult of a DEL when the kept ADD result is lost: the address from the lease. */
export function resultFromLease(ip: string, subnet: string, netns: string): CniResult {
  const { prefix, gateway } = parseSubnet(subnet);
  return { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: netns }], ips: [{ address: `${ip}/${prefix}`, gateway, interface: 0 }] };
}
