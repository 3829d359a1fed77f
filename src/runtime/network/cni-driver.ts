/**
 * NetworkDriver on the CNI reference plugins (see cni-list.ts), invoked directly.
 *
 * Per container:
 *   <runDir>/netns/<id>                        its persistent network namespace (netns.ts)
 *   <stateDir>/containers/<id>/network.json    the ADD result (prevResult of CHECK and DEL), the
 *                                              ports in force; kept across reboots, so the address
 *                                              is asked for again (host-local's CNI_ARGS IP=)
 *   <stateDir>/network/leases/<net>/<ip>       host-local's lease (holds the container id)
 *   <stateDir>/network/ports/<proto>_<ip>_<port>  its host port claims (port-claims.ts)
 * and the plugins' iptables rules, which carry the network name and the container id.
 *
 * CNI operations run one at a time per driver: the plugins share iptables chains and host-local's
 * lease dir, and a port claim must be checked and taken before another is.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { PublishedPort } from '../../api/types.js';
import { samePorts } from '../../api/ports.js';
import { findBinary } from '../../util/find-binary.js';
import { RuntimeUnavailableError } from '../runtime.js';
import { KeyedMutex } from '../runc/async.js';
import { readJson, writeJsonAtomic, forgetFiles } from '../../util/json-file.js';
import { removePaths } from '../../util/small-file.js';
import { CniError, DEFAULT_CNI_PATH, type CniResult } from './cni-exec.js';
import { addList, addressOf, callOne, checkList, delList, IFNAME, loopbackUp, pluginList, type CniTarget, type PluginConfig } from './cni-list.js';
import { NetworkError, type NetworkDriver, type NetworkPrepared, type NetworkRequest, type NetworkSetup, type NetworkStatus, type NodeNetworkConfig } from './driver.js';
import { rewriteHosts, writeEtcFiles } from './etc-files.js';
import { bindNetnsOf, createNetns, isNetnsMounted, netnsPathOf, removeNetns } from './netns.js';
import { holdLease, readLeases, releaseHeldLease, resultFromLease } from './leases.js';
import { PortClaims } from './port-claims.js';
import { missingPortRules } from './portmap-check.js';
import { sweepContainerRules } from './iptables-sweep.js';

export interface CniDriverOptions {
  config: NodeNetworkConfig;
  stateDir: string;
  runDir: string;
  /** network.json of a container. */
  stateFileOf(id: string): string;
  /** Dir for a container's /etc files. */
  etcDirOf(id: string): string;
  /** `namespace/name` of a container id, for messages. */
  keyOf(id: string): string;
  cniPath?: string;
  hostRoot?: string;
  /** A deep check (CNI CHECK) of a container at most this often. Default 60 s. */
  deepCheckIntervalMs?: number;
  now?: () => number;
}

/** What network.json holds. */
export interface NetworkStateFile {
  network: string;
  containerId: string;
  netns: string;
  ip: string;
  hostVeth?: string;
  ports: PublishedPort[];
  result: CniResult;
}

const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall', 'loopback'];
const GLOBAL = '*';

export class CniNetworkDriver implements NetworkDriver {
  readonly config: NodeNetworkConfig;
  private readonly opts: CniDriverOptions;
  private readonly plugins: PluginConfig[];
  private readonly leasesDir: string;
  private readonly claims: PortClaims;
  private readonly lock = new KeyedMutex();
  private readonly lastDeep = new Map<string, { at: number; problem?: string }>();
  private readonly now: () => number;

  constructor(opts: CniDriverOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
    this.leasesDir = path.join(opts.stateDir, 'network', 'leases');
    this.claims = new PortClaims(path.join(opts.stateDir, 'network', 'ports'));
    this.plugins = pluginList(opts.config, this.leasesDir);
  }

  async preflight(): Promise<void> {
    const dir = this.opts.cniPath ?? DEFAULT_CNI_PATH;
    const missing = PLUGINS.filter((p) => !existsSync(path.join(dir, p)));
    if (missing.length) throw new RuntimeUnavailableError(`CNI plugins ${missing.join(', ')} not found in ${dir}: install them with \`apt-get install -y containernetworking-plugins\``);
    if (!(await findBinary('iptables'))) throw new RuntimeUnavailableError('iptables not found: install it with `apt-get install -y iptables`');
  }

  private target(id: string): CniTarget {
    return { containerId: id, netns: netnsPathOf(this.opts.runDir, id), cniPath: this.opts.cniPath };
  }

  private async readState(id: string): Promise<NetworkStateFile | undefined> {
    return readJson<NetworkStateFile>(this.opts.stateFileOf(id)).catch(() => undefined);
  }

  private vethPresent(st: NetworkStateFile): boolean {
    return !st.hostVeth || existsSync(`/sys/class/net/${st.hostVeth}`);
  }

  /** The cheap look: the namespace is mounted and the host side of the veth exists. */
  private shallowProblem(st: NetworkStateFile): string | undefined {
    if (!isNetnsMounted(st.netns)) return `network namespace ${st.netns} is gone`;
    if (!this.vethPresent(st)) return `veth ${st.hostVeth} of ${st.ip} is gone`;
    return undefined;
  }

  async setUp(req: NetworkRequest): Promise<NetworkSetup> {
    return (await this.prepare(req)).finish();
  }

  async prepare(req: NetworkRequest): Promise<NetworkPrepared> {
    const first = await this.lock.run(GLOBAL, async (): Promise<{ reuse?: NetworkStateFile; wantIp?: string }> => {
      const st = await this.readState(req.id);
      if (st && !this.shallowProblem(st)) return { reuse: st };
      return { wantIp: await this.attachBegin(req, st, false) };
    });
    const netnsPath = this.target(req.id).netns;
    const ipNow = first.reuse?.ip ?? first.wantIp;
    const etcFiles = await writeEtcFiles(this.opts.etcDirOf(req.id), { hostname: req.hostname, ip: ipNow, hostRoot: this.opts.hostRoot });
    const finish = () =>
      this.lock.run(GLOBAL, async (): Promise<NetworkSetup> => {
        let st: NetworkStateFile;
        if (first.reuse) st = samePorts(first.reuse.ports, req.ports) ? first.reuse : await this.swapPorts(first.reuse, req);
        else st = await this.attachEnd(req, first.wantIp, false);
        // runc may have bind-mounted the file already: written in place, not replaced.
        if (st.ip !== ipNow) rewriteHosts(etcFiles.hosts, req.hostname, st.ip);
        return { netnsPath: st.netns, ip: st.ip, etcFiles };
      });
    return { netnsPath, etcFiles, finish };
  }

  /**
   * A fresh namespace with an address (the one it had, when it had one) and the ports. Whatever
   * an earlier attachment left (rules, lease, namespace) is removed first. On failure nothing is
   * left: no half-configured namespace.
   */
  private async attach(req: NetworkRequest, old: NetworkStateFile | undefined, keepNetns = false): Promise<NetworkStateFile> {
    return this.attachEnd(req, await this.attachBegin(req, old, keepNetns), keepNetns);
  }

  /** The old attachment removed, the ports claimed, the namespace made; returns the address to ask for. */
  private async attachBegin(req: NetworkRequest, old: NetworkStateFile | undefined, keepNetns: boolean): Promise<string | undefined> {
    const t = this.target(req.id);
    const wantIp = old?.ip ?? this.leaseOf(req.id);
    await this.detach(req.id, old, { keepNetns }).catch(() => undefined);
    // Its address stays its own until the ADD in attachEnd asks for it again (see holdLease).
    if (wantIp) holdLease(this.leasesDir, this.config.name, wantIp, t.containerId, IFNAME);
    const unhold = () => wantIp && releaseHeldLease(this.leasesDir, this.config.name, wantIp, t.containerId);
    try {
      await this.claims.claim(req.id, req.key, req.ports, (id) => this.opts.keyOf(id));
    } catch (err) {
      unhold();
      throw err;
    }
    try {
      await createNetns(t.netns);
    } catch (err) {
      unhold();
      await this.claims.release(req.id).catch(() => undefined);
      throw classify(err, req.key, this.config);
    }
    return wantIp;
  }

  /** The plugins' ADD in the namespace; the result kept. On failure: DEL, namespace and claims gone. */
  private async attachEnd(req: NetworkRequest, wantIp: string | undefined, keepNetns: boolean): Promise<NetworkStateFile> {
    const t = this.target(req.id);
    try {
      await loopbackUp(t);
      let result: CniResult;
      if (wantIp) releaseHeldLease(this.leasesDir, this.config.name, wantIp, t.containerId);
      try {
        result = await addList(this.config, this.plugins, t, req.ports, wantIp);
      } catch (err) {
        if (!wantIp || !/not available|already allocated/.test(String((err as Error).message))) throw err;
        // Its old address went to another container meanwhile: take a new one.
        await delList(this.config, this.plugins, t, req.ports).catch(() => undefined);
        result = await addList(this.config, this.plugins, t, req.ports);
      }
      const { ip, hostVeth } = addressOf(result, this.config.bridge);
      if (!ip) throw new Error(`the bridge plugin gave ${req.key} no IPv4 address`);
      const st: NetworkStateFile = { network: this.config.name, containerId: req.id, netns: t.netns, ip, ports: [...req.ports], result, ...(hostVeth ? { hostVeth } : {}) };
      await writeJsonAtomic(this.opts.stateFileOf(req.id), st);
      this.freshlyMade(req.id);
      return st;
    } catch (err) {
      await delList(this.config, this.plugins, t, req.ports).catch(() => undefined);
      if (!keepNetns) await removeNetns(t.netns).catch(() => undefined);
      await this.claims.release(req.id).catch(() => undefined);
      throw classify(err, req.key, this.config);
    }
  }

  /** portmap DEL of the old ports, ADD of the new: same namespace, same address, same process. */
  private async swapPorts(st: NetworkStateFile, req: NetworkRequest): Promise<NetworkStateFile> {
    const t = this.target(req.id);
    const portmap = this.plugins.find((p) => p.type === 'portmap')!;
    await this.claims.claim(req.id, req.key, req.ports, (id) => this.opts.keyOf(id));
    try {
      await callOne(this.config, portmap, 'DEL', t, st.ports, st.result);
      await callOne(this.config, portmap, 'ADD', t, req.ports, st.result);
    } catch (err) {
      // Put the old ports back, so the container keeps what it had.
      await callOne(this.config, portmap, 'DEL', t, req.ports, st.result).catch(() => undefined);
      await callOne(this.config, portmap, 'ADD', t, st.ports, st.result).catch(() => undefined);
      await this.claims.release(req.id, st.ports).catch(() => undefined);
      throw classify(err, req.key, this.config);
    }
    const next: NetworkStateFile = { ...st, ports: [...req.ports] };
    await writeJsonAtomic(this.opts.stateFileOf(req.id), next);
    await this.claims.release(req.id, req.ports);
    return next;
  }

  /**
   * What the plugins just made needs no CHECK now: the next deep check is one interval away (it
   * would cost the reconcile that follows every change some 50 ms of plugin and iptables runs).
   */
  private freshlyMade(id: string): void {
    this.lastDeep.set(id, { at: this.now() });
  }

  async observe(id: string, opts: { deep: boolean }): Promise<NetworkStatus | undefined> {
    const st = await this.readState(id);
    if (!st) return undefined;
    const out: NetworkStatus = { ip: st.ip, netnsPath: st.netns, ports: st.ports };
    const shallow = this.shallowProblem(st);
    if (shallow) {
      out.problem = shallow;
      return out;
    }
    if (!opts.deep) return out;
    const last = this.lastDeep.get(id);
    const interval = this.opts.deepCheckIntervalMs ?? 60_000;
    if (last && this.now() - last.at < interval) {
      if (last.problem) out.problem = last.problem;
      return out;
    }
    let problem: string | undefined;
    try {
      await this.lock.run(GLOBAL, () => checkList(this.config, this.plugins, this.target(id), st.ports, st.result));
      const missing = await missingPortRules(this.config.name, id, st.ports);
      if (missing.length) problem = `port rules of ${missing.join(', ')} are missing`;
    } catch (err) {
      problem = `CNI CHECK failed: ${(err as Error).message}`;
    }
    this.lastDeep.set(id, { at: this.now(), ...(problem ? { problem } : {}) });
    if (problem) out.problem = problem;
    return out;
  }

  async update(req: NetworkRequest, opts: { repair: boolean }): Promise<NetworkStatus> {
    return this.lock.run(GLOBAL, async () => {
      let st = await this.readState(req.id);
      // The namespace file was unmounted or deleted by hand, the process still runs in it: bind it
      // again from the process, so the repair happens where the process is.
      if (st && req.pid && !isNetnsMounted(st.netns)) await bindNetnsOf(req.pid, st.netns).catch(() => undefined);
      if (!st || opts.repair || this.shallowProblem(st)) {
        // Repaired inside the namespace the process is in, when it is still there.
        const keep = !!st && isNetnsMounted(st.netns);
        st = await this.attach(req, st, keep);
      } else if (!samePorts(st.ports, req.ports)) {
        st = await this.swapPorts(st, req);
      }
      this.freshlyMade(req.id);
      return { ip: st.ip, netnsPath: st.netns, ports: st.ports };
    });
  }

  async tearDown(id: string): Promise<void> {
    await this.lock.run(GLOBAL, async () => {
      await this.detach(id, await this.readState(id), { keepNetns: false });
    });
  }

  /** DEL (with the cached result, or one rebuilt from the lease), namespace, claims, network.json. */
  private async detach(id: string, st: NetworkStateFile | undefined, o: { keepNetns: boolean }): Promise<void> {
    const t = this.target(id);
    const prev = st?.result ?? this.resultFromLease(id);
    const hadAnything = !!st || !!prev || existsSync(t.netns);
    const nsGone = !isNetnsMounted(t.netns);
    if (hadAnything) await delList(this.config, this.plugins, t, st?.ports ?? [], prev);
    // Without its namespace the bridge plugin cannot find the masquerade rules to remove.
    if (hadAnything && nsGone) await sweepContainerRules(this.config.name, id);
    if (!o.keepNetns) await removeNetns(t.netns);
    await this.claims.release(id);
    const file = this.opts.stateFileOf(id);
    await removePaths([file]);
    forgetFiles([file]);
    this.lastDeep.delete(id);
  }

  private leaseOf(id: string): string | undefined {
    return readLeases(this.leasesDir, this.config.name).find((l) => l.id === id)?.ip;
  }

  private resultFromLease(id: string): CniResult | undefined {
    const ip = this.leaseOf(id);
    return ip ? resultFromLease(ip, this.config.subnet, netnsPathOf(this.opts.runDir, id)) : undefined;
  }

  async collectGarbage(exists: (id: string) => boolean): Promise<string[]> {
    return this.lock.run(GLOBAL, async () => {
      const ids = new Set<string>([...readLeases(this.leasesDir, this.config.name).map((l) => l.id), ...this.claims.holders()]);
      const nsDir = path.join(this.opts.runDir, 'netns');
      for (const n of existsSync(nsDir) ? readdirSync(nsDir) : []) ids.add(n);
      const gone: string[] = [];
      for (const id of [...ids].sort()) {
        if (!id || exists(id)) continue;
        gone.push(id);
        await this.detach(id, undefined, { keepNetns: false }).catch(() => undefined);
      }
      return gone;
    });
  }
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
