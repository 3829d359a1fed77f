/**
 * The Runtime on runc + overlayfs + conmon. All state lives in the state dir and the run dir (see
 * paths.ts); a new acetate process adopts whatever an earlier one left running, since nothing is
 * kept in memory.
 *
 * A thin facade: each operation lives in a file of its own and works on the shared RuncContext
 * (runc-context.ts): reading (read-containers.ts), create (create.ts), start (start.ts), stop
 * (stop.ts), remove (remove.ts), changes in place (update-in-place.ts), temporary dirs and their
 * sweep (temp-dirs.ts).
 */
import path from 'node:path';
import { holdSpaceReserve } from '../../util/space-reserve.js';
import { checkFreeSpace } from '../free-space.js';
import type { Resources } from '../../api/types.js';
import {
  NotRunningError,
  ExecUnsupportedError,
  type ActualContainer,
  type AppliedRecord,
  type DiskUsage,
  type CreateRequest,
  type ExecRequest,
  type ExecResult,
  type FollowOptions,
  type LogOptions,
  type RemoveOptions,
  type ResizeResult,
  type NodeNetworkFacts,
  type ProcessWatch,
  type ListOptions,
  type UserNamespaceFacts,
  type Runtime,
  type StopOptions,
} from '../runtime.js';
import { preflight } from './preflight.js';
import type { NodeLimitFinding } from './node-limits.js';
import { DEFAULT_USERNS_POOL } from '../walls/id-pool.js';
import { claimExistingRanges, rangesHeldElsewhere } from '../walls/id-ranges.js';
import { idRangeStore } from '../walls/walls.js';
import type { HostPathRules } from '../walls/hostpath-open.js';
import { RUNC_GRANULARITY } from './granularity.js';
import type { TemplateStore } from './templates.js';
import type { ImageStore } from '../../images/store.js';
import { exists } from '../../util/exists.js';
import { GoneError } from '../../contracts/errors.js';
import { isRunning } from './observe.js';
import { keyOfId, type InstancePaths } from './paths.js';
import type { NetworkStatus, NodeNetworkConfig } from '../network/driver.js';
import { entersOwnNetns, netnsPathOf } from '../network/netns.js';
import type { NetworkHooks } from './network-hooks.js';
import { RuncContext, type RuncRuntimeOptions } from './runc-context.js';
import { getContainer, listContainers } from './read-containers.js';
import { ExitWatch } from './process-watch.js';
import { readdir } from 'node:fs/promises';
import { watchHostView } from '../walls/walls.js';
import { resumeLeftFreezes, whileFrozen } from './freeze-for-room.js';

export type { RuncRuntimeOptions } from './runc-context.js';

/*
 * The operations that change containers, read logs or exec are loaded on first use: `acetate get`
 * and `plan` only read (read-containers.ts), and module loading was a third of their time.
 */
const nodeLimitsModule = () => import('./node-limits.js');
const logsModule = () => import('./logs.js');
const execModule = () => import('./exec.js');
const followModule = () => import('./follow-log.js');
const createModule = () => import('./create.js');
const startModule = () => import('./start.js');
const stopModule = () => import('./stop.js');
const removeModule = () => import('./remove.js');
const inPlaceModule = () => import('./update-in-place.js');

export class RuncRuntime implements Runtime {
  readonly name = 'runc';
  readonly granularity = RUNC_GRANULARITY;
  private readonly rc: RuncContext;

  constructor(opts: RuncRuntimeOptions) {
    this.rc = new RuncContext(opts);
  }

  get paths(): InstancePaths {
    return this.rc.paths;
  }

  get templates(): TemplateStore {
    return this.rc.templates;
  }

  get images(): ImageStore {
    return this.rc.images;
  }

  /** network: bridge (see network-hooks.ts). */
  get net(): NetworkHooks {
    return this.rc.net;
  }

  get nodeNetwork(): NodeNetworkConfig {
    return this.rc.net.config;
  }

  networkFacts(): Promise<NodeNetworkFacts | undefined> {
    return this.rc.net.facts();
  }

  userNamespaceFacts(): UserNamespaceFacts {
    const iso = this.rc.opts.isolation ?? {};
    const heldElsewhere = rangesHeldElsewhere(idRangeStore(this.rc.paths, iso));
    return { hostUsersDefault: iso.hostUsersDefault ?? false, pool: iso.usernsPool ?? DEFAULT_USERNS_POOL, ...(heldElsewhere.length ? { heldElsewhere } : {}) };
  }

  /** What each namespace may mount, asked at every start (Kubernetes mode: its labels; see ../walls/hostpath-open.ts). */
  setHostPathRules(rules: HostPathRules): void {
    this.rc.hostPathRules = rules;
  }

  /** This process now holds the node lock: it may clear what killed acetates left (see sweepLeftovers). */
  holdsNodeLock(): void {
    this.rc.lockHeld = true;
    holdSpaceReserve(this.rc.opts.stateDir);
    // Creates follow creates here: keep the images lock between them, let go when a prune wants it.
    this.rc.images.lock.keepBetweenUsers();
  }

  async preflight(): Promise<void> {
    await preflight({ runcPath: this.rc.opts.runcPath, conmonPath: this.rc.opts.conmonPath });
    await this.rc.refuseEarlierLayout();
  }

  /** See Runtime.nodeLimits (node-limits.ts): once per plan (it may scan /proc for namespaces), not per start. */
  async nodeLimits(wanted: number): Promise<NodeLimitFinding[]> {
    const { findNodeLimits, readNodeFacts } = await nodeLimitsModule();
    return findNodeLimits(await readNodeFacts({ namespaces: wanted }), wanted);
  }

  list(opts?: ListOptions): Promise<ActualContainer[]> {
    return listContainers(this.rc, opts?.keys);
  }

  /** Exits seen as conmon writes them (inotify), a lost supervisor by a signal-0 sweep: see process-watch.ts. */
  watchProcesses(onChange: (key: string) => void): ProcessWatch {
    return new ExitWatch((key) => {
      try {
        return this.rc.target(key).cp;
      } catch {
        return undefined; // not a key acetate could have made
      }
    }, onChange);
  }

  /** See Runtime.watchHostView: the node's data places watched with inotify (walls/host-view-watch.ts). */
  watchHostView(onError: (err: unknown) => void, onContainer?: (key: string, problem: string | undefined) => void): { close(): void } {
    return watchHostView(
      { paths: this.rc.paths, settings: this.rc.opts.isolation ?? {}, hostRoot: this.rc.templates.hostRoot },
      onError,
      (id, fn) => whileFrozen(this.rc, id, fn),
      (id, problem) => {
        const key = keyOfId(id)?.key;
        if (key) onContainer?.(key, problem);
      },
    );
  }

  /** The container dirs' names (one readdir): a key for every record, and for a create or removal in progress. */
  async keys(): Promise<string[]> {
    const ids = await readdir(this.rc.paths.containersDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw new Error(`cannot list ${this.rc.paths.containersDir}`, { cause: err });
    });
    return ids.flatMap((id) => (id.startsWith('.') ? [] : (keyOfId(id)?.key ?? [])));
  }

  get(key: string): Promise<ActualContainer | undefined> {
    return getContainer(this.rc, key);
  }

  /** See Runtime.diskUsage: the private area's filesystem now (a statfs), nothing else read. */
  diskUsage(c: ActualContainer): Promise<DiskUsage | undefined> {
    return this.rc.disk.usage(this.rc.pathsOf(c.id), c.applied);
  }

  async logs(key: string, opts: LogOptions = {}): Promise<string> {
    return (await this.logBytes(key, opts)).toString('utf8');
  }

  async logBytes(key: string, opts: LogOptions = {}): Promise<Buffer> {
    const t = this.rc.target(key);
    // The previous log outlives a replace (and names no record); the current one needs the container.
    if (opts.previous) {
      // No file is not an empty log: kubectl says "previous terminated container … not found".
      if (!(await exists(t.cp.previousLog))) throw new GoneError(`${key} has no previous run: it has not restarted or been replaced`);
      return (await logsModule()).readLogMessages(t.cp.previousLog, opts);
    }
    await this.rc.requireRecord(t);
    return (await logsModule()).readLogMessages(t.cp.log, opts);
  }

  async followLogs(key: string, write: (bytes: Buffer) => void | Promise<void>, opts: FollowOptions = {}): Promise<void> {
    const t = this.rc.target(key);
    await this.rc.requireRecord(t);
    await (await followModule()).followLog({ file: t.cp.log, record: t.cp.record, write, ...opts });
  }

  async exec(key: string, req: ExecRequest): Promise<ExecResult> {
    const t = this.rc.target(key);
    const record = await this.rc.requireRecord(t);
    const runc = await this.rc.runc();
    const st = await this.rc.ourState(t);
    if (!st || !isRunning(st)) throw new NotRunningError(key);
    if (record.spec.network === 'bridge' && !entersOwnNetns(st.pid, netnsPathOf(this.rc.paths.runDir, t.id))) throw new ExecUnsupportedError(key);
    return (await execModule()).runcExec({ runcPath: runc.binary, runtimeArgs: runc.globalArgs(), id: t.id, pidDir: t.cp.runDir, key: t.key }, req);
  }

  async check(req: CreateRequest): Promise<void> {
    return (await createModule()).checkCreate(this.rc, req);
  }

  async create(req: CreateRequest): Promise<void> {
    holdSpaceReserve(this.rc.opts.stateDir); // made again here once a full state dir has room
    // A disk image it allocates is counted where the disk is made (checkSpace), after the check
    // that the disk fits on the filesystem at all, whose words are the more precise.
    checkFreeSpace(this.rc.opts.stateDir, `creating ${req.namespace}/${req.name}`);
    return (await createModule()).createContainer(this.rc, req);
  }

  async withImageUse<T>(req: CreateRequest, fn: () => Promise<T>): Promise<T> {
    return (await createModule()).asImageUser(this.rc, req, fn);
  }

  async start(key: string): Promise<{ pid: number }> {
    // A node limit with no room left is named here, not met as runc's bare errno.
    await (await nodeLimitsModule()).admitOneMore(`starting ${key}`);
    return (await startModule()).startContainer(this.rc, key);
  }

  async stop(key: string, opts: StopOptions): Promise<{ exitCode?: number }> {
    return (await stopModule()).stopContainer(this.rc, key, opts);
  }

  async updateResources(key: string, resources: Resources): Promise<ResizeResult> {
    return (await inPlaceModule()).updateResources(this.rc, key, resources);
  }

  async updateNetwork(key: string, opts: { repair: boolean }): Promise<NetworkStatus | undefined> {
    return (await inPlaceModule()).updateNetwork(this.rc, key, opts);
  }

  async recordApplied(key: string, record: AppliedRecord): Promise<void> {
    return (await inPlaceModule()).recordApplied(this.rc, key, record);
  }

  async remove(key: string, opts: RemoveOptions): Promise<void> {
    return (await removeModule()).removeContainer(this.rc, key, opts);
  }

  /**
   * Loop devices and mounts of private-area images whose container is gone. Only in the process
   * that holds the node lock (apply, run): anywhere else it does nothing, since what looks left
   * over may be what the lock holder is building.
   */
  async sweepLeftovers(): Promise<string[]> {
    if (!this.rc.lockHeld) return [];
    await this.rc.disk.sweep(this.rc.paths.containersDir);
    // Containers a killed acetate left frozen for room (freeze-for-room.ts) run again first.
    const warnings = await resumeLeftFreezes(this.rc);
    // Ranges an acetate from before the node's claims gave out, claimed (once per boot when all
    // are). Said, not thrown: it is not this command's failure, the next apply or run tries again,
    // and every create and start of a container with a range meets a refused records or claims
    // file itself and fails with it.
    const store = idRangeStore(this.rc.paths, this.rc.opts.isolation ?? {});
    try {
      const conflicts = await claimExistingRanges(store, path.join(this.rc.paths.runDir, 'ids-claimed'));
      return [
        ...warnings,
        ...conflicts.map(
          (c) =>
            `${c} are held by another live container of the node too, by its claim or by its processes running with them (the two were given them before claims existed): the container is left as it is; a start with them as its range is refused until the other is gone; this is looked at again at each apply and run`,
        ),
      ];
    } catch (err) {
      return [...warnings, `could not claim this instance's id ranges for the node (tried again at the next apply or run): ${(err as Error).message}`];
    }
  }
}
