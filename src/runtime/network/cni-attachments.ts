/**
 * The CNI steps of one container's attachment, each undone on failure: attach (namespace, address,
 * ports), swap the published ports in place, detach. No locking here: CniNetworkDriver runs them
 * one at a time (see cni-driver.ts).
 */
import { existsSync } from 'node:fs';
import type { PublishedPort } from '../../api/types.js';
import { forgetFiles, readJson, writeJsonAtomic } from '../../util/json-file.js';
import { removePaths } from '../../util/small-file.js';
import { CniError, type CniResult } from './cni-exec.js';
import { addList, addressOf, callOne, checkList, containerMacOf, delList, IFNAME, loopbackUp, type CniTarget, type PluginConfig } from './cni-list.js';
import { NetworkError, type NetworkRequest, type NodeNetworkConfig } from './driver.js';
import { createNetns, isNsMounted, netnsPathOf, ownerText, removeNetns } from './netns.js';
import { holdLease, readLeases, releaseHeldLease, resultFromLease } from './leases.js';
import type { PortClaims } from './port-claims.js';
import { sweepContainerRules, sweepForwardRules } from './iptables-sweep.js';
import { enrollPort, pruneWalls, walledPortOf } from './walls.js';
import { forgetStaleNeighbour } from './neighbours.js';
import { deletePortFlows } from './conntrack.js';

/** What network.json holds. */
export interface NetworkStateFile {
  network: string;
  containerId: string;
  netns: string;
  ip: string;
  hostVeth?: string;
  ports: PublishedPort[];
  result: CniResult;
  /** The range of the user namespace that owns the namespace (ownerText), absent: the node's. */
  owner?: string;
}

export interface CniAttachmentsOptions {
  config: NodeNetworkConfig;
  plugins: PluginConfig[];
  leasesDir: string;
  claims: PortClaims;
  runDir: string;
  cniPath?: string;
  /** network.json of a container. */
  stateFileOf(id: string): string;
  /** `namespace/name` of a container id, for messages. */
  keyOf(id: string): string;
  /** An attachment was made (ADD) or removed (DEL): the driver's deep-check times follow. */
  onAttached(id: string): void;
  onDetached(id: string): void;
}

export class CniAttachments {
  private readonly config: NodeNetworkConfig;
  private readonly plugins: PluginConfig[];
  private readonly leasesDir: string;
  private readonly claims: PortClaims;

  constructor(private readonly opts: CniAttachmentsOptions) {
    this.config = opts.config;
    this.plugins = opts.plugins;
    this.leasesDir = opts.leasesDir;
    this.claims = opts.claims;
  }

  target(id: string): CniTarget {
    return { containerId: id, netns: netnsPathOf(this.opts.runDir, id), cniPath: this.opts.cniPath };
  }

  /** CNI CHECK of the attachment network.json describes. */
  async check(id: string, st: NetworkStateFile): Promise<void> {
    await checkList(this.config, this.plugins, this.target(id), st.ports, st.result);
  }

  async readState(id: string): Promise<NetworkStateFile | undefined> {
    return readJson<NetworkStateFile>(this.opts.stateFileOf(id)).catch(() => undefined);
  }

  /**
   * A fresh namespace with an address (the one it had, when it had one) and the ports. Whatever
   * an earlier attachment left (rules, lease, namespace) is removed first. On failure nothing is
   * left: no half-configured namespace.
   */
  async attach(req: NetworkRequest, old: NetworkStateFile | undefined, keepNetns = false): Promise<NetworkStateFile> {
    // A repair keeps the MAC too: the node's neighbour entry for the address stays right, and a
    // published port answers at once instead of after the entry goes stale (20–30 s).
    const mac = containerMacOf(old?.result);
    return this.end(req, await this.begin(req, old, keepNetns), keepNetns, mac);
  }

  /** The old attachment removed, the ports claimed, the namespace made; returns the address to ask for. */
  async begin(req: NetworkRequest, old: NetworkStateFile | undefined, keepNetns: boolean): Promise<string | undefined> {
    const t = this.target(req.id);
    const wantIp = old?.ip ?? this.leaseOf(req.id);
    await this.detach(req.id, old, { keepNetns }).catch(() => undefined);
    // A failed DEL leaves the namespace: a new one is made whatever its owner was (the owner may
    // change here, and an existing pair's mapping is not checked by createNetns).
    if (!keepNetns) await removeNetns(t.netns);
    // Its address stays its own until the ADD in end() asks for it again (see holdLease).
    if (wantIp) holdLease(this.leasesDir, this.config.name, wantIp, t.containerId, IFNAME);
    const unhold = () => wantIp && releaseHeldLease(this.leasesDir, this.config.name, wantIp, t.containerId);
    try {
      await this.claims.claim(req.id, req.key, req.ports, (id) => this.opts.keyOf(id));
    } catch (err) {
      unhold();
      throw err;
    }
    try {
      await createNetns(t.netns, req.owner, { keep: keepNetns });
    } catch (err) {
      unhold();
      await this.claims.release(req.id).catch(() => undefined);
      throw classify(err, req.key, this.config);
    }
    return wantIp;
  }

  /** The plugins' ADD in the namespace; the result kept. On failure: DEL, namespace and claims gone. */
  async end(req: NetworkRequest, wantIp: string | undefined, keepNetns: boolean, wantMac?: string): Promise<NetworkStateFile> {
    const t = this.target(req.id);
    try {
      await loopbackUp(t);
      let result: CniResult;
      if (wantIp) releaseHeldLease(this.leasesDir, this.config.name, wantIp, t.containerId);
      try {
        result = await addList(this.config, this.plugins, t, req.ports, wantIp, wantMac);
      } catch (err) {
        if (!wantIp || !/not available|already allocated/.test(String((err as Error).message))) throw err;
        // Its old address went to another container meanwhile: take a new one.
        await delList(this.config, this.plugins, t, req.ports).catch(() => undefined);
        result = await addList(this.config, this.plugins, t, req.ports, undefined, wantMac);
      }
      const { ip, hostVeth } = addressOf(result, this.config.bridge);
      if (!ip) throw new Error(`the bridge plugin gave ${req.key} no IPv4 address`);
      // Before the process starts: its port may send only its own address and MAC (walls.ts).
      const port = walledPortOf(result, ip, hostVeth);
      if (!port) throw new Error(`the bridge plugin gave ${req.key} no host veth or MAC to check its frames against`);
      await enrollPort(this.config.bridge, port);
      await forgetStaleNeighbour(this.config.bridge, ip, port.mac);
      const st: NetworkStateFile = {
        network: this.config.name,
        containerId: req.id,
        netns: t.netns,
        ip,
        ports: [...req.ports],
        result,
        ...(hostVeth ? { hostVeth } : {}),
        ...(req.owner ? { owner: ownerText(req.owner) } : {}),
      };
      await writeJsonAtomic(this.opts.stateFileOf(req.id), st);
      this.opts.onAttached(req.id);
      return st;
    } catch (err) {
      await delList(this.config, this.plugins, t, req.ports).catch(() => undefined);
      if (!keepNetns) await removeNetns(t.netns).catch(() => undefined);
      await this.claims.release(req.id).catch(() => undefined);
      throw classify(err, req.key, this.config);
    }
  }

  /**
   * portmap DEL of the old ports, ADD of the new: same namespace, same address, same process. The
   * ports it drops are released (holder ended, claim gone, tracked flows deleted) before the new
   * ones are claimed, so two containers that swap ports, or pass one along a chain, in one edit
   * converge: whichever goes first frees what the other claims. Should a claim or the ADD fail,
   * the container keeps the ports it keeps in both (what it drops stays dropped: the user asked).
   */
  async swapPorts(st: NetworkStateFile, req: NetworkRequest): Promise<NetworkStateFile> {
    const t = this.target(req.id);
    const portmap = this.plugins.find((p) => p.type === 'portmap')!;
    const kept = st.ports.filter((p) => req.ports.some((q) => samePort(p, q)));
    const dropped = st.ports.filter((p) => !kept.includes(p));
    try {
      await callOne(this.config, portmap, 'DEL', t, st.ports, st.result);
      await this.claims.release(req.id, kept);
      await deletePortFlows(st.ip, dropped);
    } catch (err) {
      throw classify(err, req.key, this.config);
    }
    try {
      await this.claims.claim(req.id, req.key, req.ports, (id) => this.opts.keyOf(id));
      await callOne(this.config, portmap, 'ADD', t, req.ports, st.result);
    } catch (err) {
      await callOne(this.config, portmap, 'DEL', t, req.ports, st.result).catch(() => undefined);
      await this.claims.release(req.id, kept).catch(() => undefined);
      const rest = await callOne(this.config, portmap, 'ADD', t, kept, st.result).then(
        () => kept,
        () => [] as PublishedPort[],
      );
      await writeJsonAtomic(this.opts.stateFileOf(req.id), { ...st, ports: rest }).catch(() => undefined);
      throw classify(err, req.key, this.config);
    }
    const next: NetworkStateFile = { ...st, ports: [...req.ports] };
    await writeJsonAtomic(this.opts.stateFileOf(req.id), next);
    return next;
  }

  /**
   * DEL (with the cached result, or one rebuilt from the lease), then what a DEL killed half way
   * or a lost namespace leaves (iptables-sweep.ts), the tracked flows of its ports, namespace,
   * claims (holders ended), network.json last: a retry after any failure still knows the address.
   */
  async detach(id: string, st: NetworkStateFile | undefined, o: { keepNetns: boolean; rulesLeft?: boolean }): Promise<void> {
    const t = this.target(id);
    const leased = this.leaseOf(id);
    const prev = st?.result ?? (leased ? resultFromLease(leased, this.config.subnet, t.netns) : undefined);
    const ip = st?.ip ?? leased;
    // rulesLeft: garbage collection found rules naming it, though nothing else of it is left.
    // A namespace file that holds no namespace (acetate killed while making it): the plugins'
    // DEL would refuse it ("unknown FS magic"), and with it every destroy. A missing one they take.
    if (existsSync(t.netns) && !isNsMounted(t.netns)) await removeNetns(t.netns);
    const hadAnything = !!st || !!prev || existsSync(t.netns) || !!o.rulesLeft;
    if (hadAnything) {
      let failed: unknown;
      await delList(this.config, this.plugins, t, st?.ports ?? [], prev).catch((err: unknown) => (failed = err));
      await sweepContainerRules(this.config.name, id);
      // The address's accept rules, unless the address went to another container meanwhile.
      const now = ip ? readLeases(this.leasesDir, this.config.name).find((l) => l.ip === ip) : undefined;
      if (ip && (!now || now.id === id)) await sweepForwardRules(this.config.subnet, [ip]);
      if (ip && st?.ports.length) await deletePortFlows(ip, st.ports);
      // Its veth is gone with the DEL: so is its port's entry in the address check.
      await pruneWalls(this.config.bridge).catch(() => undefined);
      // A DEL that failed is tried again, whole, by the next detach: the lease may still be there.
      if (failed) throw failed;
    }
    if (!o.keepNetns) await removeNetns(t.netns);
    await this.claims.release(id);
    const file = this.opts.stateFileOf(id);
    await removePaths([file]);
    forgetFiles([file]);
    this.opts.onDetached(id);
  }

  leaseOf(id: string): string | undefined {
    return readLeases(this.leasesDir, this.config.name).find((l) => l.id === id)?.ip;
  }

  resultFromLease(id: string): CniResult | undefined {
    const ip = this.leaseOf(id);
    return ip ? resultFromLease(ip, this.config.subnet, netnsPathOf(this.opts.runDir, id)) : undefined;
  }
}

/** The same mapping: host socket and container port. */
function samePort(a: PublishedPort, b: PublishedPort): boolean {
  return a.hostPort === b.hostPort && (a.hostIP ?? '') === (b.hostIP ?? '') && a.containerPort === b.containerPort && a.protocol === b.protocol;
}

/** Plugin errors as NetworkErrors with a reason (a full subnet), the cause kept. */
function classify(err: unknown, key: string, cfg: NodeNetworkConfig): Error {
  if (err instanceof NetworkError) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (/no IP addresses available|range set .* is exhausted/i.test(msg)) {
    return new NetworkError('SubnetFull', `no address left for ${key} in ${cfg.subnet} (bridge ${cfg.bridge}): ${msg}`, { cause: err });
  }
  const what = err instanceof CniError ? err.message : msg;
  return new NetworkError('NetworkSetupFailed', `cannot set up the network of ${key}: ${what}`, { cause: err });
}
