/**
 * The Runtime on runc + overlayfs + conmon. All state lives in the state dir and the run dir (see
 * paths.ts); a new acetate process adopts whatever an earlier one left running, since nothing is
 * kept in memory.
 */
import { chmod, readdir, realpath, rm, rmdir } from 'node:fs/promises';
import { existsNow, makeDirs, removePaths, writeSmallFile } from '../../util/small-file.js';
import { renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { hashOf } from '../../api/hash.js';
import { appliedRecord } from '../applied-record.js';
import { RUNC_GRANULARITY } from './granularity.js';
import type { Resources } from '../../api/types.js';
import { containerKey, splitKey } from '../../api/types.js';
import { NotFoundError, NotRunningError, RuntimeUnavailableError, type ActualContainer, type AppliedRecord, type CreateRequest, type ExecRequest, type ExecResult, type FollowOptions, type LogOptions, type RemoveOptions, type ResizeResult, type Runtime, type StopOptions } from '../runtime.js';
import { findBinary, preflight } from './preflight.js';
import type { TemplateStore } from './templates.js';
import { ensureImageRootfs, ImageStore } from '../../images/store.js';
import { KeyedMutex, mapLimit, pollUntil, realSleep, type Sleep } from './async.js';
import { CGROUP_ROOT, detectCgroupMode, hasSwapAccounting, readLimits, type CgroupLocation, type CgroupMode } from './cgroups.js';
import { KILL_WAIT_MS, reapConmon, removeCgroupParentIfEmpty, scrubContainer, waitGone, type Waiter } from './cleanup.js';
import { launchConmon, readExitCode, readPid, runcPidTempOf } from './conmon.js';
import { readLogMessages } from './logs.js';
import { findInit } from './init.js';
import { runcExec } from './exec.js';
import { followLog } from './follow-log.js';
import { mountsUnder, unmountAll } from './mounts.js';
import { buildOciConfig, OciConfigError, type OciConfigInput } from './oci-config.js';
import { isolationInputs, type IsolationSettings } from './isolation.js';
import { refuseOwnDirAncestors } from './hostpath-guard.js';
import { exitReason, isOurs, isRunning, mtimeOf, processInfo, unfinishedRun } from './observe.js';
import { currentBootId } from './supervision.js';
import { refuseMissingHostPaths } from './mount-checks.js';
import { MAX_ID_LENGTH, containerIdOf, containerPaths, instancePaths, type ContainerPaths, type InstancePaths } from './paths.js';
import { hostNofileHard, isAlive, readBoundingCapabilities } from './procfs.js';
import { resizeInPlace } from './resize.js';
import { DiskHooks } from '../disk/hooks.js';
import type { DiskDriver } from '../disk/driver.js';
import { RuncCli } from './runc-cli.js';
import { forgetFiles, readRecord, readStatus, restartCountOf, writeJsonAtomic, type ContainerStatusFile } from './store.js';
import { NetworkError, type NetworkDriver, type NetworkStatus, type NodeNetworkConfig } from '../network/driver.js';
import type { NodeNetworkOptions } from '../network/node-config.js';
import { NetworkHooks } from './network-hooks.js';
import type { RuncState } from './runc-state.js';
import { InvalidError } from '../../contracts/errors.js';

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
  /** Path or bare name of the static init run as PID 1 (default catatonit; see init.ts). */
  initPath?: string;
  /**
   * This process holds the node lock (see ../node-lock.ts), so list() may sweep what killed
   * acetates left (`.creating-…`/`.removing-…` dirs). Default false: a read-only command must never
   * remove what the lock holder is building. Also set later by holdsNodeLock().
   */
  sweepLeftovers?: boolean;
  /** The node network of `network: bridge` containers (bridge, subnet; see network/node-config.ts). */
  network?: NodeNetworkOptions & { cniPath?: string; deepCheckIntervalMs?: number };
  /** Another network backend than the CNI plugins. */
  networkDriver?: NetworkDriver;
  /** How resources.disk bounds a private area (default: XFS on a loop device, see ../disk/). */
  disk?: DiskDriver;
}

interface HostInfo {
  cgroupMode: CgroupMode;
  swapAccounting: boolean;
  nofileHard: number;
  boundingCapabilities: string[];
  /** The init binary, or the reason there is none (only an error for containers that want it). */
  init: { path?: string; error?: Error };
}

interface Target {
  key: string;
  id: string;
  namespace: string;
  name: string;
  cp: ContainerPaths;
}

/** `.creating-<pid>-…` / `.removing-<pid>-…` in the containers dir (see withTempDir). */
const TEMP_NAME = /^\.(?:creating|removing)-(\d+)-/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** How long conmon may take to record an exit code after the process is gone. */
const EXIT_FILE_WAIT_MS = 5_000;
const INSTALL_HINT = 'install it with `apt-get install -y runc conmon`';

export class RuncRuntime implements Runtime {
  readonly name = 'runc';
  readonly granularity = RUNC_GRANULARITY;
  readonly paths: InstancePaths;
  readonly templates: TemplateStore;
  readonly images: ImageStore;
  private readonly opts: RuncRuntimeOptions;
  private readonly waiter: Waiter;
  private readonly now: () => number;
  private readonly cgroupRoot: string;
  private readonly locks = new KeyedMutex();
  /** While a start is in flight the cgroup parent must not be removed under it. */
  private startsInFlight = 0;
  private binariesPromise?: Promise<{ runc: string; conmon: string }>;
  private hostInfoPromise?: Promise<HostInfo>;
  private runcCli?: RuncCli;
  /** refuseEarlierLayout() passed once: preflight and the first runc use both ask. */
  private layoutChecked = false;
  /** Paths of every container seen, computed once (list() needs them for all on every pass). */
  private readonly pathsById = new Map<string, ContainerPaths>();
  /** Temporary dirs of creates and removals in progress in this process (never swept). */
  private readonly tempInFlight = new Set<string>();
  /** This process holds the node lock (see RuncRuntimeOptions.sweepLeftovers). */
  private lockHeld: boolean;
  /** network: bridge (see network-hooks.ts). */
  readonly net: NetworkHooks;
  /** resources.disk: the private area's own filesystem (see ../disk/hooks.ts). */
  private readonly disk: DiskHooks;

  constructor(opts: RuncRuntimeOptions) {
    this.opts = opts;
    this.paths = instancePaths(opts.stateDir, opts.runDir);
    this.templates = opts.templates;
    this.images = opts.images ?? new ImageStore({ stateDir: opts.stateDir });
    this.now = opts.now ?? Date.now;
    this.waiter = { sleep: opts.sleep ?? realSleep, now: this.now, pollIntervalMs: opts.pollIntervalMs ?? 50 };
    this.cgroupRoot = opts.cgroupRoot ?? CGROUP_ROOT;
    this.lockHeld = opts.sweepLeftovers ?? false;
    this.net = new NetworkHooks({ paths: this.paths, hostRoot: opts.templates.hostRoot, network: opts.network, driver: opts.networkDriver, now: this.now });
    this.disk = new DiskHooks(opts.disk);
  }

  /** This process now holds the node lock: list() sweeps leftovers of killed acetates. */
  holdsNodeLock(): void {
    this.lockHeld = true;
  }

  // ---------------------------------------------------------------- setup

  async preflight(): Promise<void> {
    await preflight({ runcPath: this.opts.runcPath, conmonPath: this.opts.conmonPath });
    await this.refuseEarlierLayout();
  }

  private binaries(): Promise<{ runc: string; conmon: string }> {
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

  private async runc(): Promise<RuncCli> {
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
  private async refuseEarlierLayout(): Promise<void> {
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

  private hostInfo(): Promise<HostInfo> {
    this.hostInfoPromise ??= (async () => {
      const cgroupMode = await detectCgroupMode(this.cgroupRoot);
      return {
        cgroupMode,
        swapAccounting: cgroupMode === 'v1' && (await hasSwapAccounting(this.cgroupRoot)),
        nofileHard: await hostNofileHard(),
        boundingCapabilities: await readBoundingCapabilities(),
        init: await findInit(this.opts.initPath).then((path) => ({ path }), (error: Error) => ({ error })),
      };
    })();
    return this.hostInfoPromise;
  }

  private target(key: string): Target {
    const { namespace, name } = splitKey(key);
    const id = containerIdOf(namespace, name);
    return { key, id, namespace, name, cp: this.pathsOf(id) };
  }

  private pathsOf(id: string): ContainerPaths {
    let cp = this.pathsById.get(id);
    if (!cp) this.pathsById.set(id, (cp = containerPaths(this.paths, id)));
    return cp;
  }

  private async cgroupOf(cp: ContainerPaths): Promise<CgroupLocation> {
    return { cgroupsPath: cp.cgroupsPath, root: this.cgroupRoot, mode: (await this.hostInfo()).cgroupMode };
  }

  /** runc state of one of our containers; throws if runc has a container with that id that is not ours. */
  private async ourState(t: Target): Promise<RuncState | undefined> {
    const st = await (await this.runc()).state(t.id);
    if (st && !isOurs(st, t.namespace, t.name)) {
      const root = this.paths.runcRoot;
      throw new Error(
        `runc container ${t.id} in ${root} was not created by acetate for ${t.key}; acetate leaves it alone (remove it by hand: runc --root ${root} delete --force ${t.id})`,
      );
    }
    return st;
  }

  private async requireRecord(t: Target): Promise<AppliedRecord> {
    const record = await readRecord(t.cp.record);
    if (!record) throw new NotFoundError(t.key);
    return record;
  }

  // ---------------------------------------------------------------- reading

  private async actual(id: string, record: AppliedRecord, st: RuncState | undefined, deep = false): Promise<ActualContainer> {
    const cp = this.pathsOf(id);
    const status = await readStatus(cp.status);
    // The lock holder also puts back run-dir files removed by hand under a supervised process.
    const process = await processInfo(cp, st, status, await this.cgroupOf(cp), { repair: this.lockHeld });
    const limits = process.state === 'running' ? await readLimits(await this.cgroupOf(cp)) : {};
    const disk = await this.disk.usage(cp, record);
    if (disk && process.state === 'running') limits.diskBytes = disk.sizeBytes;
    return {
      key: containerKey(record.namespace, record.name),
      namespace: record.namespace,
      name: record.name,
      id,
      applied: record,
      process,
      limits,
      restartCount: restartCountOf(status),
      ...(record.spec.network === 'bridge' ? { network: await this.net.observe(id, process.state === 'running', deep) } : {}),
      ...(disk ? { disk } : {}),
    };
  }

  /** Reads the records, ONE `runc list`, and cgroup files of running containers; no per-container process. */
  async list(): Promise<ActualContainer[]> {
    let ids: string[];
    try {
      ids = await readdir(this.paths.containersDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot list ${this.paths.containersDir}`, { cause: err });
    }
    const temp = ids.filter((n) => n.startsWith('.'));
    if (temp.length) {
      if (this.lockHeld) await this.sweepTemp(temp);
      ids = ids.filter((n) => !n.startsWith('.'));
    }
    const found = await mapLimit(ids.sort(), 64, async (id) => {
      const record = await readRecord(this.pathsOf(id).record);
      return record ? { id, record } : undefined;
    });
    const records = found.filter((r): r is { id: string; record: AppliedRecord } => r !== undefined);
    // Like the sweep above, only in the process that holds the node lock: a read-only command changes nothing.
    if (this.lockHeld) await this.net.collectGarbageOnce();
    if (records.length === 0) return [];
    const states = new Map((await (await this.runc()).list()).map((s) => [s.id, s]));
    return mapLimit(records, 64, ({ id, record }) => {
      const st = states.get(id);
      return this.actual(id, record, st && isOurs(st, record.namespace, record.name) ? st : undefined);
    });
  }

  async get(key: string): Promise<ActualContainer | undefined> {
    const t = this.target(key);
    const record = await readRecord(t.cp.record);
    if (!record) return undefined;
    const st = await (await this.runc()).state(t.id);
    // One container at a time (the loop's reconcile of a key): its network is checked in depth.
    return this.actual(t.id, record, st && isOurs(st, t.namespace, t.name) ? st : undefined, true);
  }

  async logs(key: string, opts: LogOptions = {}): Promise<string> {
    const t = this.target(key);
    await this.requireRecord(t);
    return readLogMessages(t.cp.log, opts);
  }

  async followLogs(key: string, write: (text: string) => void, opts: FollowOptions = {}): Promise<void> {
    const t = this.target(key);
    await this.requireRecord(t);
    await followLog({ file: t.cp.log, record: t.cp.record, write, ...opts });
  }

  async exec(key: string, req: ExecRequest): Promise<ExecResult> {
    const t = this.target(key);
    await this.requireRecord(t);
    const runc = await this.runc();
    const st = await this.ourState(t);
    if (!st || !isRunning(st)) throw new NotRunningError(key);
    return runcExec({ runcPath: runc.binary, runtimeArgs: runc.globalArgs(), id: t.id, pidDir: t.cp.runDir }, req);
  }

  // ---------------------------------------------------------------- create / record

  private async ociConfigInput(record: Pick<AppliedRecord, 'namespace' | 'name' | 'spec' | 'specHash'>, cp: ContainerPaths, prepare = false): Promise<OciConfigInput> {
    const host = await this.hostInfo();
    if (record.spec.init !== false && host.init.error) throw host.init.error;
    // An image is pulled here if it is not on the node yet (create and replace's check come first).
    const image = record.spec.image ? await ensureImageRootfs(this.images, record.spec.image) : undefined;
    const template = image ? image.lowerDirs : await this.templates.resolve(record.spec.template);
    const iso = { paths: this.paths, settings: this.opts.isolation ?? {}, hostRoot: this.templates.hostRoot, boundingCapabilities: host.boundingCapabilities };
    // With resources.disk the private area's upper and work dirs live on its own filesystem.
    const { lower, ...isolation } = await isolationInputs(record, { ...cp, ...this.disk.layers(cp, record) }, template, iso, { prepare });
    return {
      ...isolation,
      ...(image ? { image: { config: image.config, passwd: image.passwd, group: image.group } } : {}),
      namespace: record.namespace,
      name: record.name,
      spec: record.spec,
      specHash: record.specHash,
      rootfsPath: cp.rootfs,
      rootfsOverlay: { lower, ...this.disk.layers(cp, record) },
      cgroupsPath: cp.cgroupsPath,
      hostNofileHard: host.nofileHard,
      swapAccounting: host.swapAccounting,
      boundingCapabilities: host.boundingCapabilities,
      hostRoot: this.templates.hostRoot,
      initPath: host.init.path,
    };
  }

  async check(req: CreateRequest): Promise<void> {
    const t = this.target(containerKey(req.namespace, req.name));
    await this.refuseStateDirMounts(req.spec.mounts);
    buildOciConfig(await this.ociConfigInput({ namespace: req.namespace, name: req.name, spec: req.spec, specHash: hashOf(req.spec) }, t.cp));
  }

  async create(req: CreateRequest): Promise<void> {
    if (!DNS_LABEL.test(req.namespace)) throw new InvalidError(`invalid namespace '${req.namespace}': must be a DNS-1123 label`);
    if (!DNS_SUBDOMAIN.test(req.name)) throw new InvalidError(`invalid name '${req.name}': must be a DNS-1123 subdomain`);
    const t = this.target(containerKey(req.namespace, req.name));
    if (t.id.length > MAX_ID_LENGTH) throw new InvalidError(`${t.key}: namespace and name are too long together (max ${MAX_ID_LENGTH} characters)`);
    const { cp } = t;
    // Fail early: a missing template, or what the OCI config refuses (a mount path with '..'...).
    await this.refuseStateDirMounts(req.spec.mounts);
    const specHash = hashOf(req.spec);
    buildOciConfig(await this.ociConfigInput({ namespace: req.namespace, name: req.name, spec: req.spec, specHash }, cp));
    await this.locks.run(t.key, async () => {
      const dirExists = existsNow(cp.dir);
      const existing = dirExists ? await readRecord(cp.record) : undefined;
      const record = appliedRecord(req, existing?.createdAt ?? new Date(this.now()).toISOString());
      if (dirExists) {
        // Re-created over a kept private area (a replace), or a record being rewritten.
        await makeDirs([...this.disk.plainLayers(cp, record), cp.rootfs]);
        // No record: a status file here is of an earlier container; none reads as never started.
        if (!existing) await removePaths([cp.status]);
        await writeJsonAtomic(cp.record, record);
        return;
      }
      // A new container appears whole: its directory is built under a temporary name and renamed
      // into place with its record, so a SIGKILL never leaves a directory without a record (which
      // nothing would ever clean up once the container is no longer declared).
      await this.withTempDir('creating', t.id, async (tmp) => {
        // No status file yet: none reads as never started. Nothing else sees this dir before the
        // rename, so the record needs no write-and-rename of its own. The run dir's part (bundle,
        // exit dir) is made by each start.
        const under = (p: string) => tmp + p.slice(cp.dir.length);
        await makeDirs([...this.disk.plainLayers(cp, record), cp.rootfs].map(under));
        await writeSmallFile(under(cp.record), `${JSON.stringify(record)}\n`);
        renameSync(tmp, cp.dir);
      });
    });
  }

  get nodeNetwork(): NodeNetworkConfig {
    return this.net.config;
  }

  async updateNetwork(key: string, opts: { repair: boolean }): Promise<NetworkStatus | undefined> {
    const t = this.target(key);
    return this.locks.run(key, async () => {
      const record = await this.requireRecord(t);
      const st = await this.ourState(t);
      return this.net.update(t.id, record, opts.repair, st && isRunning(st) ? st.pid : undefined);
    });
  }

  async recordApplied(key: string, record: AppliedRecord): Promise<void> {
    const t = this.target(key);
    await this.locks.run(key, async () => {
      await this.requireRecord(t);
      await writeJsonAtomic(t.cp.record, record);
    });
  }

  // ---------------------------------------------------------------- start

  async start(key: string): Promise<{ pid: number }> {
    const t = this.target(key);
    return this.locks.run(key, async () => {
      const record = await this.requireRecord(t);
      const runc = await this.runc();
      const st = await this.ourState(t);
      if (st && isRunning(st)) return { pid: st.pid };
      // A previous run exited (stopped), or an earlier start was interrupted (created, or a launch
      // that never reported): record the exit, clear everything it left, start from scratch.
      if (st?.status === 'stopped') await this.noteExit(t.cp);
      await this.scrub(t, runc, false);
      // The private area's filesystem: attached (again after a reboot), grown or shrunk to the record.
      await this.disk.prepare(t.cp, record);
      this.startsInFlight++;
      try {
        try {
          return await this.launch(t, record, runc);
        } catch (err) {
          // Another conmon (from an acetate killed while it launched one) got there first.
          if (!/already exists/.test(String((err as Error).message))) throw err;
          await this.scrub(t, runc, true);
          return await this.launch(t, record, runc);
        }
      } finally {
        this.startsInFlight--;
      }
    });
  }

  /**
   * A container must never see acetate's own state or run dir: with them, it could rewrite other
   * containers' records and OCI configs (e.g. make one privileged at its next start), or the pid
   * files acetate signals.
   */
  private async refuseStateDirMounts(mounts: readonly { hostPath: string }[]): Promise<void> {
    if (mounts.length === 0) return;
    const own: { dir: string; what: string }[] = [];
    for (const [dir, what] of [[this.paths.stateDir, 'state dir'], [this.paths.runDir, 'run dir']] as const) {
      own.push({ dir, what }, { dir: await realpath(dir).catch(() => dir), what });
    }
    for (const m of mounts) {
      const host = path.resolve(path.join(this.templates.hostRoot, m.hostPath));
      const real = await realpath(host).catch(() => host);
      const hit = own.find(({ dir }) => [host, real].some((p) => p === dir || p.startsWith(`${dir}/`)));
      if (hit) throw new OciConfigError(`mount hostPath '${m.hostPath}' is inside acetate's ${hit.what} ${hit.dir}: refused`);
    }
    await refuseOwnDirAncestors(mounts, own, this.templates.hostRoot);
    // After the check above: a path inside acetate's dirs is refused for that, whether it exists yet or not.
    refuseMissingHostPaths(mounts, this.templates.hostRoot);
  }

  private scrub(t: Target, runc: RuncCli, scan: boolean): Promise<void> {
    return scrubContainer({ id: t.id, cp: t.cp, runc, cgroupRoot: this.cgroupRoot, scan }, this.waiter);
  }

  /**
   * Write config.json, have conmon create the container, start it. The root overlay is mounted by
   * runc inside the container's mount namespace (no `mount` process, nothing mounted on the node).
   */
  private async launch(t: Target, record: AppliedRecord, runc: RuncCli): Promise<{ pid: number }> {
    const { cp } = t;
    const { conmon } = await this.binaries();
    const layers = this.disk.layers(cp, record);
    await makeDirs([layers.upper, layers.work, cp.rootfs, cp.bundle, cp.exitDir, this.paths.socketDir]);
    // The merged root takes the upper dir's mode: 0755 as the image's root, so an image's non-root
    // User can reach its files (the container dir around it stays 0700 to the node's users).
    if (record.spec.image) await chmod(layers.upper, 0o755);
    await this.refuseStateDirMounts(record.spec.mounts);
    // A rootfs left mounted on the node by an older acetate would hide the overlay's target.
    await unmountAll(cp.rootfs, { sleep: this.waiter.sleep });
    const network = await this.net.prepare(t.id, record);
    const config = buildOciConfig({ ...(await this.ociConfigInput(record, cp, true)), ...(network ? { network } : {}) });
    await writeSmallFile(cp.config, `${JSON.stringify(config, null, 2)}\n`);
    await removePaths([cp.exitFile]);
    let pid: number;
    // The plugins' ADD runs while conmon has runc create the container (which only joins the
    // namespace); the process starts (runc start) after both.
    const attached = network?.finish();
    attached?.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    try {
      ({ pid } = await launchConmon({
        conmonPath: conmon,
        runcPath: runc.binary,
        runtimeArgs: runc.globalArgs(),
        id: t.id,
        cuuid: cp.cuuid,
        name: t.key,
        bundle: cp.bundle,
        pidFile: cp.pidFile,
        conmonPidFile: cp.conmonPidFile,
        logFile: cp.log,
        exitDir: cp.exitDir,
        socketDir: this.paths.socketDir,
        syncFile: cp.syncFile,
        conmonOut: cp.conmonOut,
        logSizeMax: this.opts.logSizeMax ?? 16 * 1024 * 1024,
      }));
      await attached;
      await runc.start(t.id, { initPid: pid });
    } catch (err) {
      // Leave nothing half-created behind: the next start() begins from scratch.
      await attached?.catch(() => undefined);
      await runc.delete(t.id, { force: true }).catch(() => undefined);
      await reapConmon(cp, this.waiter).catch(() => undefined);
      await unmountAll(cp.rootfs, { sleep: this.waiter.sleep }).catch(() => undefined);
      if (err instanceof NetworkError) throw err; // its reason (PortConflict, SubnetFull...) is the condition's
      throw new Error(`cannot start ${t.key}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const status = await readStatus(cp.status);
    const next: ContainerStatusFile = { starts: status.starts + 1, startedAt: new Date(this.now()).toISOString(), bootId: currentBootId() };
    if (status.lastExitCode !== undefined) next.lastExitCode = status.lastExitCode;
    await writeJsonAtomic(cp.status, next);
    return { pid };
  }

  /** Record the exit code of a run that ended, before its runc state is deleted. */
  private async noteExit(cp: ContainerPaths): Promise<number | undefined> {
    // runc reports `stopped` as soon as the process is a zombie; conmon writes the code right after.
    const conmonPid = await readPid(cp.conmonPidFile);
    await pollUntil(
      async () => (await readExitCode(cp.exitFile)) !== undefined || conmonPid === undefined || !(await isAlive(conmonPid)),
      { timeoutMs: EXIT_FILE_WAIT_MS, intervalMs: 20, firstIntervalMs: 2, sleep: this.waiter.sleep, now: this.now },
    );
    const exitCode = await readExitCode(cp.exitFile);
    const status = await readStatus(cp.status);
    const next: ContainerStatusFile = { ...status, finishedAt: (await mtimeOf(cp.exitFile)) ?? new Date(this.now()).toISOString() };
    if (exitCode !== undefined) next.lastExitCode = exitCode;
    else delete next.lastExitCode;
    const reason = await exitReason(exitCode, await this.cgroupOf(cp));
    if (reason) next.lastReason = reason;
    else delete next.lastReason;
    await writeJsonAtomic(cp.status, next);
    return exitCode;
  }

  /** A run whose end was never recorded (its runc state was lost) ends now, with its exit code unknown. */
  private async noteUnseenEnd(cp: ContainerPaths): Promise<void> {
    const status = await readStatus(cp.status);
    if (!unfinishedRun(status)) return;
    const next: ContainerStatusFile = { ...status, finishedAt: new Date(this.now()).toISOString() };
    delete next.lastExitCode;
    delete next.lastReason;
    await writeJsonAtomic(cp.status, next);
  }

  // ---------------------------------------------------------------- stop

  async stop(key: string, opts: StopOptions): Promise<{ exitCode?: number }> {
    const t = this.target(key);
    return this.locks.run(key, async () => {
      await this.requireRecord(t);
      return this.stopLocked(t, opts.graceSeconds, opts.leaveExited);
    });
  }

  private async stopLocked(t: Target, graceSeconds: number, leaveExited = false): Promise<{ exitCode?: number }> {
    const runc = await this.runc();
    const st = await this.ourState(t);
    if (st && isRunning(st)) {
      await runc.kill(t.id, 'SIGTERM').catch(() => undefined); // it may just have exited
      if (!(await waitGone(st.pid, Math.max(0, graceSeconds) * 1000, this.waiter))) {
        await runc.kill(t.id, 'SIGKILL', { all: true }).catch(() => runc.kill(t.id, 'SIGKILL').catch(() => undefined));
        if (!(await waitGone(st.pid, KILL_WAIT_MS, this.waiter))) throw new Error(`${t.key}: pid ${st.pid} survived SIGKILL`);
      }
    }
    // A run that ended (now, or before): its exit code. `created` never ran: nothing to record.
    const ran = st !== undefined && st.status !== 'created' && st.status !== 'creating';
    const exitCode = ran ? await this.noteExit(t.cp) : (await readStatus(t.cp.status)).lastExitCode;
    if (!ran) await this.noteUnseenEnd(t.cp);
    // As after a crash: runc's `stopped` state and conmon's exit file stay until the next start.
    if (leaveExited) return exitCode === undefined ? {} : { exitCode };
    // Also clears what an interrupted start left (conmon, half-created runc state, cgroups).
    await this.scrub(t, runc, false);
    await unmountAll(t.cp.rootfs, { sleep: this.waiter.sleep });
    await this.removeEmptyCgroupParent();
    return exitCode === undefined ? {} : { exitCode };
  }

  // ---------------------------------------------------------------- resize

  async updateResources(key: string, resources: Resources): Promise<ResizeResult> {
    const t = this.target(key);
    return this.locks.run(key, async () => {
      const record = await this.requireRecord(t);
      const st = await this.ourState(t);
      if (!isRunning(st)) {
        // Nothing runs: the new limits apply at the next start.
        await this.writeResources(t.cp, record, resources);
        return { limits: {}, deferred: [] };
      }
      const r = await resizeInPlace({
        runc: await this.runc(),
        id: t.id,
        cgroup: await this.cgroupOf(t.cp),
        wanted: resources,
        inForce: record.spec.resources,
        swapAccounting: (await this.hostInfo()).swapAccounting,
      });
      const disk = await this.disk.resizeLive(t.cp, record, resources);
      if (disk.sizeBytes === undefined) delete r.applied.diskBytes;
      else r.applied.diskBytes = r.limits.diskBytes = disk.sizeBytes;
      if (disk.deferred) r.deferred.push(disk.deferred);
      await this.writeResources(t.cp, record, r.applied);
      return { limits: r.limits, deferred: r.deferred };
    });
  }

  /** Record resources as applied (the spec hash follows the spec). */
  private async writeResources(cp: ContainerPaths, record: AppliedRecord, resources: Resources): Promise<void> {
    const clean: Resources = {};
    if (resources.cpuMillis !== undefined) clean.cpuMillis = resources.cpuMillis;
    if (resources.memoryBytes !== undefined) clean.memoryBytes = resources.memoryBytes;
    if (resources.pids !== undefined) clean.pids = resources.pids;
    if (resources.diskBytes !== undefined) clean.diskBytes = resources.diskBytes;
    await writeJsonAtomic(cp.record, appliedRecord(record, record.createdAt, clean));
  }

  // ---------------------------------------------------------------- remove

  async remove(key: string, opts: RemoveOptions): Promise<void> {
    const t = this.target(key);
    const { cp } = t;
    await this.locks.run(key, async () => {
      const record = await readRecord(cp.record).catch(() => undefined);
      const runc = await this.runc();
      const st = await runc.state(t.id);
      const ours = st !== undefined && isOurs(st, t.namespace, t.name);
      if (ours && isRunning(st)) await this.stopLocked(t, record?.spec.terminationGracePeriodSeconds ?? 0);
      // A runc container with this id that is not ours is left alone (and so are its cgroups).
      if (!st || ours) await this.scrub(t, runc, false);
      // Unmount everything under the container dir before deleting anything in it.
      for (const m of await mountsUnder(cp.dir)) await unmountAll(m, { sleep: this.waiter.sleep });
      const left = await mountsUnder(cp.dir);
      if (left.length) throw new Error(`cannot remove ${key}: still mounted: ${left.join(', ')}`);
      await this.removeEmptyCgroupParent();
      await this.net.tearDown(t.id);
      // The run dir's part first: while the record exists, list() shows the container and an
      // interrupted removal is retried, so nothing of it can be left behind without a record.
      await this.removeRunFiles(cp);
      if (opts.keepPrivateArea) {
        await removePaths([cp.rootfs, cp.log, cp.status], { recursive: true });
        // The record goes last: while it exists, list() shows the container and removal is retried.
        await removePaths([cp.record]);
      } else {
        // The whole directory, record included, leaves in one rename; what a SIGKILL leaves of
        // the deletion is swept by the next list().
        await this.withTempDir('removing', t.id, async (trash) => {
          try {
            renameSync(cp.dir, trash);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
        });
      }
      forgetFiles([cp.record, cp.status]);
      this.pathsById.delete(t.id);
    });
  }

  /**
   * A container's files in the run dir, one by one (never the dir recursively: with
   * `--run-dir <stateDir>`, the earlier layout, it is the container dir itself), then the dir if
   * that left it empty.
   */
  private async removeRunFiles(cp: ContainerPaths): Promise<void> {
    await removePaths([path.join(this.paths.socketDir, cp.cuuid), cp.bundle, cp.exitDir, path.join(cp.runDir, 'etc'), cp.pidFile, runcPidTempOf(cp.pidFile), cp.conmonPidFile, cp.syncFile, cp.conmonOut], { recursive: true });
    // Pid files of execs a killed acetate left (see exec.ts).
    const execPids = (await readdir(cp.runDir).catch(() => [] as string[])).filter((n) => n.startsWith('exec-') && n.endsWith('.pid'));
    await removePaths(execPids.map((n) => path.join(cp.runDir, n)));
    if (cp.runDir !== cp.dir) await rmdir(cp.runDir).catch(() => undefined);
  }

  /**
   * Runs fn with a fresh temporary path in the containers dir (`.<what>-<pid>-<id>-<random>`),
   * removed afterwards whatever fn did with it. Leftovers of a killed acetate are swept by list().
   */
  private async withTempDir(what: 'creating' | 'removing', id: string, fn: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = path.join(this.paths.containersDir, `.${what}-${process.pid}-${id}-${randomBytes(4).toString('hex')}`);
    this.tempInFlight.add(tmp);
    try {
      await makeDirs([this.paths.containersDir]);
      await fn(tmp);
    } finally {
      await rm(tmp, { recursive: true, force: true }); // a private area can be large: off the event loop
      this.tempInFlight.delete(tmp);
    }
  }

  /** Remove what killed acetates left of creates and removals (their pid is gone, or it is ours and idle). */
  private async sweepTemp(names: readonly string[]): Promise<void> {
    for (const n of names) {
      const m = TEMP_NAME.exec(n);
      if (!m) continue;
      const full = path.join(this.paths.containersDir, n);
      if (this.tempInFlight.has(full)) continue;
      const pid = Number(m[1]);
      if (pid !== process.pid && (await isAlive(pid))) continue;
      await rm(full, { recursive: true, force: true });
    }
  }

  async sweepLeftovers(): Promise<void> {
    await this.disk.sweep(this.paths.containersDir);
  }

  private async removeEmptyCgroupParent(): Promise<void> {
    if (this.startsInFlight > 0) return;
    await removeCgroupParentIfEmpty(this.paths.cgroupParent, this.cgroupRoot);
  }
}
