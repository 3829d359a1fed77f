/**
 * What a test instance's bridge networking can leave on the node: network namespace files in its
 * run dir, host-local leases in its state dir, veths on its bridge (and the bridge itself after
 * cleanup), iptables rules naming its CNI network or its subnet. Each test instance has a bridge
 * and a subnet of its own (testNetwork()), so these never mix with another test's or helper's.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { sweepContainerRules } from '../../src/runtime/network/iptables-sweep.js';
import { listEnrolled, removeWalls, wallsTable } from '../../src/runtime/network/walls.js';

export interface TestNetwork {
  bridge: string;
  subnet: string;
}

/** A bridge name and a /24 no other test instance uses (checked against the node's interfaces and routes). */
export async function testNetwork(): Promise<TestNetwork> {
  const routes = (await exec('ip', ['-4', 'route', 'show']).catch(() => ({ stdout: '' }))).stdout;
  for (;;) {
    const bridge = `act${randomBytes(3).toString('hex')}`;
    const prefix = `10.${randomInt(200, 250)}.${randomInt(0, 256)}.`;
    if (existsSync(`/sys/class/net/${bridge}`) || routes.includes(prefix)) continue;
    return { bridge, subnet: `${prefix}0/24` };
  }
}

/** Environment for the CLI: this network, and the deep network check on every reconcile. */
export function networkEnv(n: TestNetwork): NodeJS.ProcessEnv {
  return { ACETATE_NETWORK_BRIDGE: n.bridge, ACETATE_NETWORK_SUBNET: n.subnet, ACETATE_NETWORK_CHECK_MS: '0' };
}

export interface NetworkLeaks {
  netns: string[];
  /** The files of the user namespaces that own network namespaces (network/netns.ts). */
  userns: string[];
  leases: string[];
  veths: string[];
  iptables: string[];
  /** Ports still enrolled in the bridge's address check (walls.ts), and with bridgeGone its nft tables. */
  walls: string[];
  bridge?: string;
}

function listDir(p: string): string[] {
  try {
    return readdirSync(p).sort();
  } catch {
    return [];
  }
}

function subnetPrefix(subnet: string): string {
  return subnet.split('.').slice(0, 3).join('.') + '.';
}

/** iptables rules (nat and filter) of the instance's network: by CNI network name or by subnet. */
export async function instanceRules(stateDir: string, n: TestNetwork): Promise<{ table: string; rule: string }[]> {
  const name = `acetate-${instancePaths(stateDir).instanceHash}`;
  const out: { table: string; rule: string }[] = [];
  for (const table of ['nat', 'filter']) {
    const { stdout } = await exec('iptables-save', ['-t', table]).catch(() => ({ stdout: '' }));
    for (const l of stdout.split('\n')) {
      if (l.startsWith('-A ') && (l.includes(`"${name}"`) || l.includes(subnetPrefix(n.subnet)))) out.push({ table, rule: l });
    }
  }
  return out;
}

export async function snapshotNetworkLeaks(stateDir: string, n: TestNetwork, opts: { runDir?: string; bridgeGone?: boolean } = {}): Promise<NetworkLeaks> {
  const ip = instancePaths(stateDir, opts.runDir);
  const leaseDir = path.join(ip.stateDir, 'network', 'leases', `acetate-${ip.instanceHash}`);
  return {
    netns: listDir(path.join(ip.runDir, 'netns')),
    userns: listDir(path.join(ip.runDir, 'userns')),
    leases: listDir(leaseDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
    veths: listDir(`/sys/class/net/${n.bridge}/brif`),
    iptables: (await instanceRules(stateDir, n)).map((r) => `${r.table}: ${r.rule}`),
    walls: await wallsLeft(n, !!opts.bridgeGone),
    ...(opts.bridgeGone && existsSync(`/sys/class/net/${n.bridge}`) ? { bridge: n.bridge } : {}),
  };
}

/** Enrolled ports of the bridge (each a container that was never torn down); the tables too once the bridge should be gone. */
async function wallsLeft(n: TestNetwork, bridgeGone: boolean): Promise<string[]> {
  const { ports } = await listEnrolled(n.bridge);
  const out = ports.map((p) => `port ${p}`);
  if (bridgeGone) {
    const { stdout } = await exec('nft', ['list', 'tables']).catch(() => ({ stdout: '' }));
    for (const l of stdout.split('\n')) if (l.trim().endsWith(` ${wallsTable(n.bridge)}`)) out.push(l.trim());
  }
  return out;
}

export function networkProblems(l: NetworkLeaks): string[] {
  const out: string[] = [];
  if (l.netns.length) out.push(`network namespaces: ${l.netns.join(', ')}`);
  if (l.userns.length) out.push(`user namespaces of network namespaces: ${l.userns.join(', ')}`);
  if (l.leases.length) out.push(`leases: ${l.leases.join(', ')}`);
  if (l.veths.length) out.push(`veths: ${l.veths.join(', ')}`);
  if (l.iptables.length) out.push(`iptables rules: ${l.iptables.join(' | ')}`);
  if (l.walls.length) out.push(`nft walls: ${l.walls.join(', ')}`);
  if (l.bridge) out.push(`bridge still exists: ${l.bridge}`);
  return out;
}

/** Removes what the instance's network left: its iptables rules (deleted one by one), its bridge and the bridge's nft walls. */
export async function cleanupNetwork(stateDir: string, n: TestNetwork, cniNetwork = `acetate-${instancePaths(stateDir).instanceHash}`): Promise<void> {
  // Rules by the network's name, with the per-container chains they used; then any by subnet.
  await sweepContainerRules(cniNetwork).catch(() => undefined);
  for (const { table, rule } of (await instanceRules(stateDir, n)).reverse()) {
    const args = rule
      .slice(3)
      .match(/"(?:[^"\\]|\\.)*"|\S+/g)!
      .map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));
    await exec('iptables', ['-w', '-t', table, '-D', ...args]).catch(() => undefined);
  }
  // The per-container chains the rules jumped to (CNI-<hash>, CNI-DN-<hash>) are empty now only if
  // their container was torn down; those of this instance are found by their rules above.
  if (existsSync(`/sys/class/net/${n.bridge}`)) await exec('ip', ['link', 'del', n.bridge]).catch(() => undefined);
  // The bridge's walls stay while it exists (walls.ts): they go with it.
  await removeWalls(n.bridge).catch(() => undefined);
}
