/**
 * acetate's network as a CNI plugin list, and the list operations of the CNI spec ("Network
 * configuration lists"): ADD runs the plugins in order, each given the previous one's result as
 * prevResult; CHECK runs them in order and DEL in reverse, each given the cached ADD result.
 *
 *   bridge    veth pair, the node's bridge as gateway, masquerade of outgoing traffic;
 *             host-local IPAM, its leases in acetate's state dir (per instance)
 *   portmap   published ports (runtimeConfig.portMappings): DNAT, and SNAT so that the node
 *             itself reaches them on 127.0.0.1 (route_localnet on the bridge)
 *   firewall  lets the container's traffic through the FORWARD chain
 * and `loopback` on lo, as its own single-plugin network.
 */
import type { PublishedPort } from '../../api/types.js';
import { publishedOnly } from '../../api/ports.js';
import { callPlugin, CNI_VERSION, type CniResult } from './cni-exec.js';
import type { NodeNetworkConfig } from './driver.js';

export const IFNAME = 'eth0';

export interface CniTarget {
  containerId: string;
  netns: string;
  cniPath?: string;
}

export type PluginConfig = Record<string, unknown> & { type: string };

export function pluginList(cfg: NodeNetworkConfig, leasesDir: string): PluginConfig[] {
  return [
    {
      type: 'bridge',
      bridge: cfg.bridge,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: cfg.subnet, gateway: cfg.gateway }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: leasesDir,
      },
    },
    { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    { type: 'firewall', backend: 'iptables' },
  ];
}

/** portmap's runtimeConfig.portMappings (CNI CONVENTIONS.md). */
export function portMappings(ports: readonly PublishedPort[]): { hostPort: number; containerPort: number; protocol: string; hostIP?: string }[] {
  return publishedOnly(ports).map((p) => ({
    hostPort: p.hostPort!,
    containerPort: p.containerPort,
    protocol: p.protocol.toLowerCase(),
    ...(p.hostIP ? { hostIP: p.hostIP } : {}),
  }));
}

function configOf(cfg: NodeNetworkConfig, plugin: PluginConfig, ports: readonly PublishedPort[], prevResult?: CniResult): PluginConfig {
  const c: PluginConfig = { cniVersion: CNI_VERSION, name: cfg.name, ...plugin };
  delete c.capabilities;
  if (plugin.type === 'portmap') c.runtimeConfig = { portMappings: portMappings(ports) };
  if (prevResult) c.prevResult = prevResult;
  return c;
}

export async function addList(
  cfg: NodeNetworkConfig,
  plugins: PluginConfig[],
  t: CniTarget,
  ports: readonly PublishedPort[],
  requestIp?: string,
  requestMac?: string,
): Promise<CniResult> {
  let result: CniResult | undefined;
  for (const p of plugins) {
    // host-local takes IP= from the bridge plugin's CNI_ARGS; the bridge plugin takes MAC= (the
    // container side of the veth keeps its address across a repair, so the node's ARP entry holds).
    const args = p.type === 'bridge' ? { ...(requestIp ? { IP: requestIp } : {}), ...(requestMac ? { MAC: requestMac } : {}) } : {};
    result = await callPlugin({
      command: 'ADD',
      containerId: t.containerId,
      netns: t.netns,
      ifname: IFNAME,
      args: Object.keys(args).length ? args : undefined,
      config: configOf(cfg, p, ports, result),
      cniPath: t.cniPath,
    });
  }
  return result!;
}

/** CHECK of every plugin but portmap (see portmap-check.ts for why and what replaces it). */
export async function checkList(
  cfg: NodeNetworkConfig,
  plugins: PluginConfig[],
  t: CniTarget,
  ports: readonly PublishedPort[],
  prev: CniResult,
): Promise<void> {
  for (const p of plugins) {
    if (p.type === 'portmap') continue;
    await callPlugin({
      command: 'CHECK',
      containerId: t.containerId,
      netns: t.netns,
      ifname: IFNAME,
      config: configOf(cfg, p, ports, prev),
      cniPath: t.cniPath,
    });
  }
}

/** DEL of every plugin, in reverse; every one is tried, the first error is thrown after. */
export async function delList(cfg: NodeNetworkConfig, plugins: PluginConfig[], t: CniTarget, ports: readonly PublishedPort[], prev?: CniResult): Promise<void> {
  let first: unknown;
  for (const p of [...plugins].reverse()) {
    try {
      await callPlugin({
        command: 'DEL',
        containerId: t.containerId,
        netns: t.netns,
        ifname: IFNAME,
        config: configOf(cfg, p, ports, prev),
        cniPath: t.cniPath,
      });
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw first;
}

/** One plugin of the list alone (portmap, for a change of published ports). */
export async function callOne(
  cfg: NodeNetworkConfig,
  plugin: PluginConfig,
  command: 'ADD' | 'DEL',
  t: CniTarget,
  ports: readonly PublishedPort[],
  prev: CniResult,
): Promise<void> {
  await callPlugin({ command, containerId: t.containerId, netns: t.netns, ifname: IFNAME, config: configOf(cfg, plugin, ports, prev), cniPath: t.cniPath });
}

export async function loopbackUp(t: CniTarget): Promise<void> {
  await callPlugin({
    command: 'ADD',
    containerId: t.containerId,
    netns: t.netns,
    ifname: 'lo',
    config: { cniVersion: CNI_VERSION, name: 'lo', type: 'loopback' },
    cniPath: t.cniPath,
  });
}

/** The MAC of the container's side of the veth, from an ADD result. */
export function containerMacOf(result: CniResult | undefined): string | undefined {
  const mac = result?.interfaces?.find((i) => i.sandbox && i.name === IFNAME)?.mac;
  return mac && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac) ? mac : undefined;
}

/** The container's IPv4 address and the host side of its veth, from an ADD result. */
export function addressOf(result: CniResult, bridge: string): { ip?: string; hostVeth?: string } {
  const ip = result.ips?.find((i) => i.address.includes('.'))?.address.split('/')[0];
  const hostVeth = result.interfaces?.find((i) => !i.sandbox && i.name !== bridge)?.name;
  return { ip, hostVeth };
}
