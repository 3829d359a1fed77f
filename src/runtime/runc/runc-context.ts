/**
 * What every operation of the runc runtime shares: its options, the instance's paths, the
 * binaries and host facts (found once), per-container locks, and the little state one process
 * keeps (temporary dirs in flight, starts in flight, whether it holds the node lock). The
 * operations themselves live in files of their own (read-containers.ts, create.ts, start.ts,
 * stop.ts, remove.ts, update-in-place.ts, temp-dirs.ts); RuncRuntime (runc-runtime.ts) is the
 * facade that puts them behind the Runtime interface.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { splitKey } from '../../api/types.js';
import { NotFoundError, RuntimeUnavailableError, type AppliedRecord } from '../runtime.js';
import { findBinary } from '../../util/find-binary.js';
import type { TemplateStore } from './templates.js';
import { ImageStore } from '../../images/store.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';
import { realSleep, type Sleep } from '../../util/poll.js';
import { CGROUP_ROOT, cgroupProcs, detectCgroupMode, hasSwapAccounting, type CgroupLocation, type CgroupMode } from './cgroups.js';
import { conmonCgroupDirs, joinCgroups } from './conmon-cgroup.js';
import { ConmonLauncher } from './conmon-launcher.js';
import { removeCgroupParentIfEmpty, scrubContainer, type Waiter } from './cleanup.js';
import { findInit } from './init.js';
import type { IsolationSettings } from '../walls/walls.js';
import { isOurs } from './observe.js';
import { containerIdOf, containerPaths, instancePaths, type ContainerPaths, type InstancePaths } from './paths.js';
import { hostNofileHard, readBoundingCapabilities } from './procfs.js';
import { DiskHooks } from '../disk/hooks.js';
import type { DiskDriver } from '../disk/driver.js';
import { RuncCli } from './runc-cli.js';
import { readRecord } from './store.js';
import type { NetworkDriver } from '../network/driver.js';
import type { NodeNetworkOptions } from '../network/node-config.js';
import { NetworkHooks } from './network-hooks.js';
import type { RuncState } from './runc-state.js';
import type { HostPathRules } from '../walls/hostpath-open.js';

export interface RuncRuntimeOptions {
  stateDir: string;
  /** Volatile runtime state: runc root, bundles, conmon files (default: see defaultRunDirOf). */
  runDir?: string;
  templates: TemplateStore;
  /** Images as templates (default: a store in <stateDir>/images). */
  images?: ImageStore;
  /** Path or bare name of runc (default: found in $PATH or the sbin dirs). */
  runcPath?: string;
  /** Path or bare name of conmon. */
  conmonPath?: string;
  /** For tests: where the cgroup hierarchies are mounted (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** For tests: how to wait, and the clock used for deadlines and timestamps. */
  sleep?: Sleep;
  now?: () => number;
  /** Interval of the liveness polls in stop() (ms). Default 50. */
  pollIntervalMs?: number;
  /** conmon truncates a container log beyond this size (bytes). Default 16 MiB. */
  logSizeMax?: number;
  /** What the host template hides, the user namespace range, the seccomp profile (see isolation.ts). */
  isolation?: IsolationSettings;
  /**
   * The security level and allowed host paths of a namespace, asked at every start to check where
   * each hostPath leads then (../walls/hostpath-open.ts). Absent: only acetate's own dirs are refused.
   * Also set later by setHostPathRules (Kubernetes mode: the namespaces' labels).
   */
  hostPathRules?: HostPathRules;
  /** Path or bare name of the static init run as PID 1 (default catatonit; see init.ts). */
  initPath?: string;
  /**
   * This process holds the node lock (see ../node-lock.ts), so it may clear what killed acetates
   * left: list() sweeps `.creating-…`/`.removing-…` dirs and collects network garbage, and
   * sweepLeftovers() works. Default false: a read-only command must never remove what the lock
   * holder is building. Also set later by holdsNodeLock().
   */
  sweepLeftovers?: boolean;
  /** The node network of `network: bridge` containers (bridge, subnet; see network/node-config.ts). */
  network?: NodeNetworkOptions & { cniPath?: string; deepCheckIntervalMs?: number };
  /** Another network backend than the CNI plugins. */
  networkDriver?: NetworkDriver;
  /** How resources.disk bounds a private area (default: XFS on a loop device, see ../disk/). */
  disk?: DiskDriver;
}

export interface HostInfo {
  cgroupMode: CgroupMode;
  swapAccounting: boolean;
  nofileHard: number;
  boundingCapabilities: string[];
  /** The init binary, or the reason there is none (only an error for containers that want it). */
  init: { path?: string; error?: Error };
}

/** One container an operation is about: its key, runc id and paths. */
export interface Target {
  key: string;
  id: string;
  namespace: string;
  name: string;
  cp: ContainerPaths;
}

const INSTALL_HINT = 'install it with `apt-get install -y runc conmon`';

export class RuncContext {
  readonly paths: InstancePaths;
  readonly templates: TemplateStore;
  readonly images: ImageStore;
  readonly opts: RuncRuntimeOptions;
  /** See RuncRuntimeOptions.hostPathRules. */
  hostPathRules?: HostPathRules;
  readonly waiter: Waiter;
  readonly now: () => number;
  readonly cgroupRoot: string;
  /** Operations on one container never interleave (see KeyedMutex). */
  readonly locks = new KeyedMutex();
  /** While a start is in flight the cgroup parent must not be removed under it. */
  startsInFlight = 0;
  /** Paths of every container seen, computed once (list() needs them for all on every pass). */
  readonly pathsById = new Map<string, ContainerPaths>();
  /** Temporary dirs of creates and removals in progress in this process (never swept). */
  readonly tempInFlight = new Set<string>();
  /** This process holds the node lock (see RuncRuntimeOptions.sweepLeftovers). */
  lockHeld: boolean;
  /** network: bridge (see network-hooks.ts). */
  readonly net: NetworkHooks;
  /** resources.disk: the private area's own filesystem (see ../disk/hooks.ts). */
  readonly disk: DiskHooks;
  private binariesPromise?: Promise<{ runc: string; conmon: string }>;
  private hostInfoPromise?: Promise<HostInfo>;
  private runcCli?: RuncCli;
  /** Starts every conmon from inside the conmons' cgroup (conmon-launcher.ts). */
  readonly launcher: ConmonLauncher;
  /** refuseEarlierLayout() passed once: preflight and the first runc use both ask. */
  private layoutChecked = false;

  constructor(opts: RuncRuntimeOptions) {
    this.opts = opts;
    this.hostPathRules = opts.hostPathRules;
    this.paths = instancePaths(opts.stateDir, opts.runDir);
    this.templates = opts.templates;
    this.images = opts.images ?? new ImageStore({ stateDir: opts.stateDir });
    this.now = opts.now ?? Date.now;
    this.waiter = { sleep: opts.sleep ?? realSleep, now: this.now, pollIntervalMs: opts.pollIntervalMs ?? 50 };
    this.cgroupRoot = opts.cgroupRoot ?? CGROUP_ROOT;
    this.lockHeld = opts.sweepLeftovers ?? false;
    this.net = new NetworkHooks({ paths: this.paths, hostRoot: opts.templates.hostRoot, network: opts.network, driver: opts.networkDriver, now: this.now });
    this.disk = new DiskHooks(opts.disk);
    this.launcher = new ConmonLauncher({ place: async (pid) => joinCgroups(pid, await conmonCgroupDirs(this.paths.cgroupParent, this.cgroupRoot)) });
  }

  binaries(): Promise<{ runc: string; conmon: string }> {
    this.binariesPromise ??= (async () => {
      const runc = await findBinary(this.opts.runcPath ?? 'runc');
      if (!runc) throw new RuntimeUnavailableError(`runc not found: ${INSTALL_HINT}`);
      const conmon = await findBinary(this.opts.conmonPath ?? 'conmon');
      if (!conmon) throw new RuntimeUnavailableError(`conmon not found: ${INSTALL_HINT}`);
      return { runc, conmon };
    })();
    this.binariesPromise.catch(() => {
      this.binariesPromise = undefined; // retry after the admin installed them
    });
    return this.binariesPromise;
  }

  async runc(): Promise<RuncCli> {
    if (!this.runcCli) {
      const { runc } = await this.binaries();
      await this.refuseEarlierLayout();
      this.runcCli ??= new RuncCli({ binary: runc, root: this.paths.runcRoot });
    }
    return this.runcCli;
  }

  /**
   * acetate once kept its runc root in the state dir. Containers started that way would be
   * invisible to a runc root in the run dir, and started a second time: refuse until the admin
   * chooses (the earlier layout is `--run-dir <stateDir>`).
   */
  async refuseEarlierLayout(): Promise<void> {
    if (this.layoutChecked) return;
    const earlier = path.join(this.paths.stateDir, 'runc');
    const ids = earlier === this.paths.runcRoot ? [] : await readdir(earlier).catch(() => [] as string[]);
    if (ids.length === 0) {
      this.layoutChecked = true;
      return;
    }
    throw new RuntimeUnavailableError(
      `${earlier} holds the runc state of ${ids.length} container(s) started by an earlier acetate, which kept it in the state dir; ` +
        `this one keeps it in the run dir ${this.paths.runDir}. Run acetate with --run-dir ${this.paths.stateDir} (the earlier layout), ` +
        `or remove those containers with the earlier acetate first`,
    );
  }

  hostInfo(): Promise<HostInfo> {
    this.hostInfoPromise ??= (async () => {
      const cgroupMode = await detectCgroupMode(this.cgroupRoot);
      return {
        cgroupMode,
        swapAccounting: cgroupMode === 'v1' && (await hasSwapAccounting(this.cgroupRoot)),
        nofileHard: await hostNofileHard(),
        boundingCapabilities: await readBoundingCapabilities(),
        init: await findInit(this.opts.initPath).then(
          (path) => ({ path }),
          (error: Error) => ({ error }),
        ),
      };
    })();
    return this.hostInfoPromise;
  }

  target(key: string): Target {
    const { namespace, name } = splitKey(key);
    const id = containerIdOf(namespace, name);
    return { key, id, namespace, name, cp: this.pathsOf(id) };
  }

  pathsOf(id: string): ContainerPaths {
    let cp = this.pathsById.get(id);
    if (!cp) this.pathsById.set(id, (cp = containerPaths(this.paths, id)));
    return cp;
  }

  async cgroupOf(cp: ContainerPaths): Promise<CgroupLocation> {
    return { cgroupsPath: cp.cgroupsPath, root: this.cgroupRoot, mode: (await this.hostInfo()).cgroupMode };
  }

  /** runc state of one of our containers; throws if runc has a container with that id that is not ours. */
  async ourState(t: Target): Promise<RuncState | undefined> {
    const st = await (await this.runc()).state(t.id);
    if (st && !isOurs(st, t.namespace, t.name)) {
      const root = this.paths.runcRoot;
      throw new Error(
        `runc container ${t.id} in ${root} was not created by acetate for ${t.key}; acetate leaves it alone (remove it by hand: runc --root ${root} delete --force ${t.id})`,
      );
    }
    return st;
  }

  async requireRecord(t: Target): Promise<AppliedRecord> {
    const record = await readRecord(t.cp.record);
    if (!record) throw new NotFoundError(t.key);
    return record;
  }

  scrub(t: Target, runc: RuncCli, scan: boolean): Promise<void> {
    return scrubContainer({ id: t.id, cp: t.cp, runc, cgroupRoot: this.cgroupRoot, scan }, this.waiter);
  }

  async removeEmptyCgroupParent(): Promise<void> {
    if (this.startsInFlight > 0) return;
    // The launcher sits in the conmons' cgroup: with no conmon (or port holder) left beside it, it
    // goes, so that the cgroup can. A start after that, or during the stop, starts another.
    if (this.launcher.pid !== undefined && (await this.onlyLauncherLeft()) && this.startsInFlight === 0) await this.launcher.stop();
    await removeCgroupParentIfEmpty(this.paths.cgroupParent, this.cgroupRoot, this.waiter, () => this.startsInFlight === 0);
  }

  /** No process but the launcher in the conmons' cgroup (none there: nothing to keep it for either). */
  private async onlyLauncherLeft(): Promise<boolean> {
    const [dir] = await conmonCgroupDirs(this.paths.cgroupParent, this.cgroupRoot);
    if (!dir) return true;
    const procs = await cgroupProcs(dir).catch(() => [] as number[]);
    return procs.every((p) => p === this.launcher.pid);
  }
}
