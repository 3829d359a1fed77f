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
 * CNI operations (the steps in cni-attachments.ts) run one at a time per driver: the plugins share
 * iptables chains and host-local's lease dir, and a port claim must be checked and taken before
 * another is. The driver also keeps when each container was last checked deeply (CNI CHECK).
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { samePorts } from '../../api/ports.js';
import { findBinary } from '../../util/find-binary.js';
import { RuntimeUnavailableError } from '../runtime.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';
import { DEFAULT_CNI_PATH } from './cni-exec.js';
import { pluginList } from './cni-list.js';
import { CniAttachments, type NetworkStateFile } from './cni-attachments.js';
import type { NetworkDriver, NetworkPrepared, NetworkRequest, NetworkSetup, NetworkStatus, NodeNetworkConfig } from './driver.js';
import { rewriteHosts, writeEtcFiles } from './etc-files.js';
import { bindNetnsOf, isNsMounted, ownerFileOf, ownerOfText, ownerText } from './netns.js';
import { readLeases } from './leases.js';
import { PortClaims } from './port-claims.js';
import { missingPortRules, missingPortRulesIn, readPortRules } from './portmap-check.js';
import { pruneWalls, walledPortOf, wallsProblem } from './walls.js';
import { claimBridge } from './bridge-owner.js';
import { forwardAddresses, ruleOwners, sweepForwardRules } from './iptables-sweep.js';

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
  /** The published ports' DNAT rules (observe with `rules`) are listed at most this often, for all containers at once. Default 2 s. */
  ruleListMs?: number;
  /**
   * Moves a new port holder process out of acetate's own cgroup (into the conmons' one): a
   * restart of acetate.service (KillMode=mixed) must not end the holders and free the ports.
   */
  placeHolder?: (pid: number) => Promise<void>;
  now?: () => number;
}

const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall', 'loopback'];
const GLOBAL = '*';
/** The start of the problem a deep check finds when only the holders of host ports are gone. */
const UNHELD = 'host ports not held open:';

export class CniNetworkDriver implements NetworkDriver {
  readonly config: NodeNetworkConfig;
  private readonly opts: CniDriverOptions;
  private readonly leasesDir: string;
  private readonly claims: PortClaims;
  private readonly attachments: CniAttachments;
  private readonly lock = new KeyedMutex();
  private readonly lastDeep = new Map<string, { at: number; problem?: string }>();
  private readonly now: () => number;
  /** The last listing of the DNAT rules (one iptables process for every container's check). */
  private portRules?: { at: number; rules: Promise<string | undefined> };

  constructor(opts: CniDriverOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
    this.leasesDir = path.join(opts.stateDir, 'network', 'leases');
    this.claims = new PortClaims(path.join(opts.stateDir, 'network', 'ports'), opts.placeHolder);
    this.attachments = new CniAttachments({
      config: opts.config,
      plugins: pluginList(opts.config, this.leasesDir),
      leasesDir: this.leasesDir,
      claims: this.claims,
      runDir: opts.runDir,
      cniPath: opts.cniPath,
      stateFileOf: opts.stateFileOf,
      keyOf: opts.keyOf,
      onAttached: (id) => this.freshlyMade(id),
      onDetached: (id) => {
        this.lastDeep.delete(id);
        this.portRules = undefined;
      },
    });
  }

  async preflight(): Promise<void> {
    const dir = this.opts.cniPath ?? DEFAULT_CNI_PATH;
    const missing = PLUGINS.filter((p) => !existsSync(path.join(dir, p)));
    if (missing.length)
      throw new RuntimeUnavailableError(
        `CNI plugins ${missing.join(', ')} not found in ${dir}: install them with \`apt-get install -y containernetworking-plugins\``,
      );
    if (!(await findBinary('iptables'))) throw new RuntimeUnavailableError('iptables not found: install it with `apt-get install -y iptables`');
    // The walls around the containers (walls.ts).
    if (!(await findBinary('nft'))) throw new RuntimeUnavailableError('nft not found: install it with `apt-get install -y nftables`');
    if (!(await findBinary('conntrack'))) throw new RuntimeUnavailableError('conntrack not found: install it with `apt-get install -y conntrack`');
    // One instance per bridge: a second one would hand out the first one's addresses again.
    await claimBridge(this.config.bridge, this.opts.stateDir);
  }

  private vethPresent(st: NetworkStateFile): boolean {
    return !st.hostVeth || existsSync(`/sys/class/net/${st.hostVeth}`);
  }

  /** The bridge the host side of the veth is a port of (its `master` link), if any. */
  private masterOf(veth: string): string | undefined {
    try {
      return path.basename(readlinkSync(`/sys/class/net/${veth}/master`));
    } catch {
      return undefined;
    }
  }

  /**
   * The cheap look (a few sysfs reads, no process): the namespace is mounted, the host side of the
   * veth exists and is still a port of the bridge (a deleted bridge leaves its veths unattached).
   */
  private shallowProblem(st: NetworkStateFile): string | undefined {
    if (!isNsMounted(st.netns)) return `network namespace ${st.netns} is gone`;
    // Its owner's file lost: bound again from the process by a repair (update), else made anew.
    if (st.owner && !isNsMounted(ownerFileOf(st.netns))) return `user namespace ${ownerFileOf(st.netns)} of its network namespace is gone`;
    if (!this.vethPresent(st)) return `veth ${st.hostVeth} of ${st.ip} is gone`;
    if (st.hostVeth && this.masterOf(st.hostVeth) !== this.config.bridge) {
      return existsSync(`/sys/class/net/${this.config.bridge}`)
        ? `veth ${st.hostVeth} of ${st.ip} is not on bridge ${this.config.bridge}`
        : `bridge ${this.config.bridge} is gone`;
    }
    return undefined;
  }

  /** The DNAT rules, listed once for every container checked within ruleListMs. */
  private listPortRules(): Promise<string | undefined> {
    const at = this.now();
    if (!this.portRules || at - this.portRules.at >= (this.opts.ruleListMs ?? 2_000)) this.portRules = { at, rules: readPortRules() };
    return this.portRules.rules;
  }

  async setUp(req: NetworkRequest): Promise<NetworkSetup> {
    return (await this.prepare(req)).finish();
  }

  async prepare(req: NetworkRequest): Promise<NetworkPrepared> {
    const first = await this.lock.run(GLOBAL, async (): Promise<{ reuse?: NetworkStateFile; wantIp?: string }> => {
      const st = await this.attachments.readState(req.id);
      if (st && !this.shallowProblem(st) && this.ownedAsAsked(st, req)) return { reuse: st };
      return { wantIp: await this.attachments.begin(req, st, false) };
    });
    const netnsPath = this.attachments.target(req.id).netns;
    const usernsPath = req.owner ? ownerFileOf(netnsPath) : undefined;
    const ipNow = first.reuse?.ip ?? first.wantIp;
    const etcFiles = await writeEtcFiles(this.opts.etcDirOf(req.id), { hostname: req.hostname, ip: ipNow, hostRoot: this.opts.hostRoot });
    const finish = () =>
      this.lock.run(GLOBAL, async (): Promise<NetworkSetup> => {
        let st: NetworkStateFile;
        if (first.reuse) {
          st = samePorts(first.reuse.ports, req.ports) ? first.reuse : await this.attachments.swapPorts(first.reuse, req);
          this.portRules = undefined;
        } else st = await this.attachments.end(req, first.wantIp, false);
        // runc may have bind-mounted the file already: written in place, not replaced.
        if (st.ip !== ipNow) rewriteHosts(etcFiles.hosts, req.hostname, st.ip);
        return { netnsPath: st.netns, ...(usernsPath ? { usernsPath } : {}), ip: st.ip, etcFiles };
      });
    return { netnsPath, ...(usernsPath ? { usernsPath } : {}), etcFiles, finish };
  }

  /**
   * Whether the namespace is owned as the start asks (by the node's user namespace, or by one of
   * the container's range, held at its file): one set up before network namespaces had owners
   * gets a new one (same address, see begin). A changed range or hostUsers is a planned replace,
   * which tears the network down first; this compares anyway, so no start joins a pair of another range.
   */
  private ownedAsAsked(st: NetworkStateFile, req: NetworkRequest): boolean {
    if (st.owner !== ownerText(req.owner)) return false;
    return !req.owner || isNsMounted(ownerFileOf(st.netns));
  }

  /**
   * What the plugins just made needs no CHECK now: the next deep check is one interval away (it
   * would cost the reconcile that follows every change some 50 ms of plugin and iptables runs).
   */
  private freshlyMade(id: string): void {
    this.lastDeep.set(id, { at: this.now() });
    this.portRules = undefined; // a listing from before the change would miss its rules
  }

  async observe(id: string, opts: { deep: boolean; rules?: boolean }): Promise<NetworkStatus | undefined> {
    const st = await this.attachments.readState(id);
    if (!st) return undefined;
    const out: NetworkStatus = { ip: st.ip, netnsPath: st.netns, ports: st.ports };
    const shallow = this.shallowProblem(st);
    if (shallow) {
      out.problem = shallow;
      return out;
    }
    if (opts.rules) {
      const missing = missingPortRulesIn(await this.listPortRules(), this.config.name, id, st.ports);
      if (missing.length) {
        out.problem = `port rules of ${missing.join(', ')} are missing`;
        return out;
      }
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
      await this.lock.run(GLOBAL, () => this.attachments.check(id, st));
      const missing = await missingPortRules(this.config.name, id, st.ports);
      if (missing.length) problem = `port rules of ${missing.join(', ')} are missing`;
      const port = walledPortOf(st.result, st.ip, st.hostVeth);
      problem ??= port ? await wallsProblem(this.config.bridge, port) : undefined;
      const unheld = this.claims.unheld(id);
      if (!problem && unheld.length) problem = `${UNHELD} ${unheld.join(', ')} (holder process gone)`;
    } catch (err) {
      problem = `CNI CHECK failed: ${(err as Error).message}`;
    }
    this.lastDeep.set(id, { at: this.now(), ...(problem ? { problem } : {}) });
    if (problem) out.problem = problem;
    return out;
  }

  async update(asked: NetworkRequest, opts: { repair: boolean }): Promise<NetworkStatus> {
    return this.lock.run(GLOBAL, async () => {
      let st = await this.attachments.readState(asked.id);
      // The running process's namespace keeps the owner it was made with: a repair in place must
      // not swap it for one of another owner (a new owner comes with the next start, see prepare).
      const owner = st ? ownerOfText(st.owner) : asked.owner;
      const { owner: _asked, ...rest } = asked;
      const req: NetworkRequest = { ...rest, ...(owner ? { owner } : {}) };
      // The namespace file was unmounted or deleted by hand, the process still runs in it: bind it
      // again from the process, so the repair happens where the process is.
      // Also with no network.json (an interrupted or failed repair removed it): the process's own
      // namespaces are kept, never a new one made beside the running process.
      const netns = st?.netns ?? this.attachments.target(req.id).netns;
      if (req.pid) await bindNetnsOf(req.pid, netns, req.owner !== undefined).catch(() => undefined);
      // A bridge deleted by hand comes back from the plugin without its owner: written again.
      if (opts.repair && !existsSync(`/sys/class/net/${this.config.bridge}`)) await claimBridge(this.config.bridge, this.opts.stateDir);
      if (st && opts.repair && !this.shallowProblem(st) && this.lastDeep.get(req.id)?.problem?.startsWith(UNHELD)) {
        // Only the holders are gone: started again (PortInUse if a process of the node took the port).
        await this.claims.claim(req.id, req.key, st.ports, (id) => this.opts.keyOf(id));
      } else if (!st || opts.repair || this.shallowProblem(st)) {
        // Repaired inside the namespace the process is in, when it is still there.
        const keep = (!!st || !!req.pid) && isNsMounted(netns);
        st = await this.attachments.attach(req, st, keep);
      } else if (!samePorts(st.ports, req.ports)) {
        st = await this.attachments.swapPorts(st, req);
      }
      this.freshlyMade(req.id);
      return { ip: st.ip, netnsPath: st.netns, ports: st.ports };
    });
  }

  async tearDown(id: string): Promise<void> {
    await this.lock.run(GLOBAL, async () => {
      await this.attachments.detach(id, await this.attachments.readState(id), { keepNetns: false });
    });
  }

  async collectGarbage(exists: (id: string) => boolean): Promise<string[]> {
    return this.lock.run(GLOBAL, async () => {
      const leases = readLeases(this.leasesDir, this.config.name);
      // Rules are owners too: a DEL killed half way may have left nothing else of the container.
      const owners = await ruleOwners(this.config.name);
      const ids = new Set<string>([...leases.map((l) => l.id), ...this.claims.holders(), ...owners]);
      for (const dir of ['netns', 'userns']) {
        const nsDir = path.join(this.opts.runDir, dir);
        for (const n of existsSync(nsDir) ? readdirSync(nsDir) : []) ids.add(n);
      }
      const gone: string[] = [];
      for (const id of [...ids].sort()) {
        if (!id || exists(id)) continue;
        gone.push(id);
        await this.attachments.detach(id, undefined, { keepNetns: false, rulesLeft: owners.has(id) }).catch(() => undefined);
      }
      // Ports whose veth went without a DEL (deleted by hand, a DEL killed half way).
      await pruneWalls(this.config.bridge).catch(() => undefined);
      await this.claims.endStrayHolders();
      // The firewall plugin's accept rules name only an address: those of addresses no one leases.
      const leased = new Set(readLeases(this.leasesDir, this.config.name).map((l) => l.ip));
      await sweepForwardRules(
        this.config.subnet,
        (await forwardAddresses(this.config.subnet)).filter((ip) => !leased.has(ip)),
      );
      return gone;
    });
  }
}
