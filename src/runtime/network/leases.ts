/**
 * host-local's leases, read directly: `<dataDir>/<network>/<ip>`, a file whose first line is the
 * container id (then the interface name). What lets acetate find the address of a container whose
 * network.json is gone (a crash between ADD and writing it) and the containers that no longer exist.
 */
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
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

/**
 * Holds `ip` for container `id` between the DEL and the ADD of a re-attachment (a namespace
 * re-made after a reboot or a repair): the DEL releases the lease, and another container's ADD in
 * between would take the freed address, so the container would come back with a new one. A lease
 * file as host-local writes it makes host-local skip the address (it reserves with O_EXCL); it is
 * released right before the ADD that asks for the address. False when the address is taken.
 */
export function holdLease(dataDir: string, network: string, ip: string, id: string, ifname: string): boolean {
  const dir = path.join(dataDir, network);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(path.join(dir, ip), `${id}\r\n${ifname}`, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot hold address ${ip} for ${id}`, { cause: err });
  }
}

/** Releases a hold of holdLease (only one of `id`: an address another container has stays). */
export function releaseHeldLease(dataDir: string, network: string, ip: string, id: string): void {
  const file = path.join(dataDir, network, ip);
  try {
    if (readSmallFileNow(file).split(/\r?\n/)[0]!.trim() === id) unlinkSync(file);
  } catch {
    /* not held */
  }
}
