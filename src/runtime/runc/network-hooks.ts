/**
 * What the runc runtime does for `network: bridge`, in one place: the driver (CNI by default)
 * made lazily, so that nodes without the plugins still run none/host containers; the status of a
 * container's network; the garbage collection of what removed containers left, once per process.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { existsNow, makeDirs, readSmallFileNow, writeSmallFileAtomic } from '../../util/small-file.js';
import { CniNetworkDriver } from '../network/cni-driver.js';
import { NetworkError, type NetworkDriver, type NetworkPrepared, type NetworkRequest, type NetworkStatus, type NodeNetworkConfig } from '../network/driver.js';
import { resolveNodeNetwork, type NodeNetworkOptions } from '../network/node-config.js';
import { keyOfId, type InstancePaths } from './paths.js';
import { conmonCgroupDirs, joinCgroups } from './conmon-cgroup.js';
import type { AppliedRecord, NodeNetworkFacts } from '../runtime.js';
import { readIds, recordedRange } from '../walls/id-ranges.js';
import type { OciUserNamespace } from '../walls/userns.js';

export interface NetworkHooksOptions {
  paths: InstancePaths;
  hostRoot?: string;
  network?: NodeNetworkOptions & { cniPath?: string; deepCheckIntervalMs?: number };
  driver?: NetworkDriver;
  now?: () => number;
}

/** The range a container's network namespace is to be owned by: its user namespace's, if any. */
export function netnsOwnerOf(userns: OciUserNamespace | undefined): NetworkRequest['owner'] {
  const m = userns?.uidMappings[0];
  return m ? { hostID: m.hostID, size: m.size } : undefined;
}

/** A container's network.json (next to its record: it must survive a reboot, for the address). */
export function networkStateFileOf(paths: InstancePaths, id: string): string {
  return `${paths.containersDir}/${id}/network.json`;
}

/** The dir of a container's /etc/hosts, hostname, resolv.conf (in the run dir). */
export function etcDirOf(paths: InstancePaths, id: string): string {
  return `${paths.runContainersDir}/${id}/etc`;
}

/** The facts' words for a change of node network, e.g. "subnet 10.90.0.0/16 → 10.91.0.0/16". */
export function describeNetworkChange(from: { bridge: string; subnet: string }, to: { bridge: string; subnet: string }): string {
  const parts: string[] = [];
  if (from.bridge !== to.bridge) parts.push(`bridge ${from.bridge} → ${to.bridge}`);
  if (from.subnet !== to.subnet) parts.push(`subnet ${from.subnet} → ${to.subnet}`);
  return parts.join(', ');
}

function readSaved(file: string): NodeNetworkOptions {
  try {
    const v = JSON.parse(readSmallFileNow(file)) as NodeNetworkOptions;
    return { bridge: typeof v.bridge === 'string' ? v.bridge : undefined, subnet: typeof v.subnet === 'string' ? v.subnet : undefined };
  } catch {
    return {};
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export class NetworkHooks {
  private driverInstance?: NetworkDriver;
  private ready?: Promise<void>;
  private gcDone = false;
  /** node.json written (or found up to date) by this process. */
  private saved = false;
  /** node.json as last read or written by this process (only this process writes it: it holds the node lock). */
  private recorded?: NodeNetworkOptions;

  constructor(private readonly opts: NetworkHooksOptions) {}

  private get savedFile(): string {
    return path.join(this.opts.paths.stateDir, 'network', 'node.json');
  }

  /** The node network (without checking that the plugins are installed). */
  get config(): NodeNetworkConfig {
    return this.driver().config;
  }

  driver(): NetworkDriver {
    if (!this.driverInstance) {
      const { paths } = this.opts;
      const env = process.env.ACETATE_NETWORK_CHECK_MS;
      this.driverInstance =
        this.opts.driver ??
        new CniNetworkDriver({
          config: resolveNodeNetwork(this.opts.network ?? {}, paths.instanceHash, readSaved(this.savedFile)),
          stateDir: paths.stateDir,
          runDir: paths.runDir,
          stateFileOf: (id) => networkStateFileOf(paths, id),
          etcDirOf: (id) => etcDirOf(paths, id),
          keyOf: (id) => keyOfId(id)?.key ?? id,
          cniPath: this.opts.network?.cniPath,
          hostRoot: this.opts.hostRoot,
          deepCheckIntervalMs: this.opts.network?.deepCheckIntervalMs ?? (env ? Number(env) : undefined),
          // Beside the conmons, out of the unit's cgroup: restarting acetate keeps the ports held.
          placeHolder: async (pid) => joinCgroups(pid, await conmonCgroupDirs(paths.cgroupParent)),
          now: this.opts.now,
        });
    }
    return this.driverInstance;
  }

  /** The driver after its preflight (plugins and iptables present), asked once. */
  private async readyDriver(): Promise<NetworkDriver> {
    const d = this.driver();
    this.ready ??= d.preflight();
    this.ready.catch(() => (this.ready = undefined));
    await this.ready;
    return d;
  }

  private request(id: string, record: AppliedRecord): NetworkRequest {
    return { id, key: `${record.namespace}/${record.name}`, hostname: record.spec.hostname || record.name, ports: record.spec.ports ?? [] };
  }

  private recordedNow(): NodeNetworkOptions {
    return (this.recorded ??= readSaved(this.savedFile));
  }

  /** Ids of the containers with network state (network.json or a namespace file), but `except`. */
  private holderIds(except?: string): string[] {
    const { paths } = this.opts;
    const ids = new Set<string>();
    for (const id of listDir(paths.containersDir)) if (existsNow(networkStateFileOf(paths, id))) ids.add(id);
    for (const id of listDir(path.join(paths.runDir, 'netns'))) ids.add(id);
    ids.delete(except ?? '');
    return [...ids].filter((id) => !id.startsWith('.')).sort();
  }

  /**
   * The node network asked for and the one recorded (see NodeNetworkFacts). No I/O once node.json
   * was read, unless the two differ (then the holders are listed).
   */
  async facts(): Promise<NodeNetworkFacts | undefined> {
    let wanted: NodeNetworkConfig;
    try {
      wanted = this.config;
    } catch {
      return undefined; // flags refused before (cli/main.ts); a broken node.json is the driver's to report
    }
    const rec = this.recordedNow();
    const recorded = rec.bridge && rec.subnet ? { bridge: rec.bridge, subnet: rec.subnet } : undefined;
    const same = !recorded || (recorded.bridge === wanted.bridge && recorded.subnet === wanted.subnet);
    return {
      wanted: { bridge: wanted.bridge, subnet: wanted.subnet },
      ...(recorded ? { recorded } : {}),
      holders: same ? [] : this.holderIds().map((id) => keyOfId(id)?.key ?? id),
    };
  }

  /**
   * Before runc creates the container: the namespace to join (owned by `owner`'s range, the
   * container's user namespace's: netnsOwnerOf) and the /etc files (see NetworkPrepared).
   */
  async prepare(id: string, record: AppliedRecord, owner?: NetworkRequest['owner']): Promise<NetworkPrepared | undefined> {
    if (record.spec.network !== 'bridge') return undefined;
    const d = await this.readyDriver();
    if (!this.saved) {
      const { bridge, subnet } = d.config;
      const prev = this.recordedNow();
      if (prev.bridge !== bridge || prev.subnet !== subnet) {
        // Never overwritten under containers set up on the old network (plan refuses it first).
        const holders = prev.bridge && prev.subnet ? this.holderIds(id) : [];
        if (holders.length) {
          throw new NetworkError(
            'NetworkChanged',
            `the node network would change (${describeNetworkChange({ bridge: prev.bridge!, subnet: prev.subnet! }, { bridge, subnet })}) while ${holders.length} container(s) hold addresses on the old one (${holders
              .slice(0, 5)
              .map((h) => keyOfId(h)?.key ?? h)
              .join(', ')}): not changed`,
          );
        }
        await makeDirs([path.dirname(this.savedFile)]);
        await writeSmallFileAtomic(this.savedFile, `${JSON.stringify({ bridge, subnet })}\n`);
        this.recorded = { bridge, subnet };
      }
      this.saved = true;
    }
    return d.prepare({ ...this.request(id, record), ...(owner ? { owner } : {}) });
  }

  async update(id: string, record: AppliedRecord, repair: boolean, pid?: number): Promise<NetworkStatus | undefined> {
    if (record.spec.network !== 'bridge') return undefined;
    // The range it runs with (recorded at its start): a repair's new namespace is owned by it too.
    const owner = recordedRange(await readIds(path.join(this.opts.paths.containersDir, id)));
    return (await this.readyDriver()).update({ ...this.request(id, record), ...(pid ? { pid } : {}), ...(owner ? { owner } : {}) }, { repair });
  }

  /**
   * A running bridge container without any network state has a problem too. `rules`: its published
   * ports' rules are looked for too (the node lock's holder, i.e. `acetate run`'s poll and apply).
   */
  async observe(id: string, running: boolean, deep: boolean, rules = false): Promise<NetworkStatus | undefined> {
    const st = await this.driver().observe(id, { deep: deep && running, rules: rules && running });
    if (!st && running) return { ports: [], problem: 'the network was never set up' };
    if (st && !running) delete st.problem; // repaired at the next start
    return st;
  }

  /** On removal: anything the container had (also when its network.json is gone). */
  async tearDown(id: string): Promise<void> {
    const { paths } = this.opts;
    const had = [networkStateFileOf(paths, id), path.join(paths.runDir, 'netns', id), path.join(paths.runDir, 'userns', id)].some(existsNow);
    if (!had && !this.driverInstance) return; // never networked, and no driver needed: skip the plugin checks
    await this.driver().tearDown(id);
  }

  /** Once per process (first list()): what containers that no longer exist left behind. */
  async collectGarbageOnce(): Promise<void> {
    if (this.gcDone) return;
    const { paths } = this.opts;
    if (!existsNow(path.join(paths.stateDir, 'network')) && !existsNow(path.join(paths.runDir, 'netns'))) {
      this.gcDone = true;
      return;
    }
    await this.driver().collectGarbage((id) => existsNow(`${paths.containersDir}/${id}/record.json`));
    this.gcDone = true;
  }
}
