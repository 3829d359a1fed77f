/**
 * The Runtime on runc + overlayfs + conmon. All state lives in the state dir (see paths.ts); a new
 * acetate process adopts whatever an earlier one left running, since nothing is kept in memory.
 */
import { access, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hashOf } from '../../api/hash.js';
import type { Resources } from '../../api/types.js';
import { containerKey, splitKey } from '../../api/types.js';
import {
  NotFoundError,
  RuntimeUnavailableError,
  type ActualContainer,
  type AppliedRecord,
  type CreateRequest,
  type DeferredResize,
  type LogOptions,
  type ProcessInfo,
  type RemoveOptions,
  type ResizeResult,
  type Runtime,
  type StopOptions,
} from '../runtime.js';
import { findBinary, preflight } from '../preflight.js';
import type { TemplateStore } from '../templates.js';
import { KeyedMutex, mapLimit, pollUntil, realSleep, type Sleep } from './async.js';
import {
  CGROUP_ROOT,
  cgroupHierarchies,
  cgroupProcs,
  detectCgroupMode,
  existingCgroupDirs,
  hasSwapAccounting,
  readLimits,
  readMemoryUsage,
  removeCgroupDir,
  removeCgroupDirIfEmpty,
  sameMemory,
  type CgroupMode,
} from './cgroups.js';
import { launchConmon, readExitCode, readPid, readSync } from './conmon.js';
import { readLogMessages } from './logs.js';
import { mountOverlay, mountsUnder, unmountAll } from './mounts.js';
import { ANNOTATION_NAME, ANNOTATION_NAMESPACE, ANNOTATION_OWNER, OWNER_VALUE, buildOciConfig } from './oci-config.js';
import { MAX_ID_LENGTH, containerIdOf, containerPaths, instancePaths, type ContainerPaths, type InstancePaths } from './paths.js';
import { findProcessesByCmdline, hostNofileHard, isAlive, readBoundingCapabilities, readCmdline } from './procfs.js';
import { CPU_PERIOD_US, cpuAndPidsUpdateFlags, cpuQuotaOf, memoryUpdateFlags } from './resources.js';
import { RuncCli, RuncError, type RuncState } from './runc-cli.js';
import { readRecord, readStatus, restartCountOf, writeJsonAtomic, type ContainerStatusFile } from './store.js';

export interface RuncRuntimeOptions {
  stateDir: string;
  templates: TemplateStore;
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
}

interface HostInfo {
  cgroupMode: CgroupMode;
  swapAccounting: boolean;
  nofileHard: number;
  boundingCapabilities: string[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** How long to wait for a SIGKILLed container to be gone, and for conmon to record its exit. */
const KILL_WAIT_MS = 15_000;
const EXIT_FILE_WAIT_MS = 5_000;

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

function isRunning(st: RuncState | undefined): boolean {
  return st !== undefined && (st.status === 'running' || st.status === 'paused' || st.status === 'pausing');
}

function formatBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi` : `${n} bytes`;
}

export class RuncRuntime implements Runtime {
  readonly name = 'runc';
  readonly paths: InstancePaths;
  readonly templates: TemplateStore;
  private readonly opts: RuncRuntimeOptions;
  private readonly sleep: Sleep;
  private readonly now: () => number;
  private readonly cgroupRoot: string;
  private readonly locks = new KeyedMutex();
  private startsInFlight = 0;
  private binariesPromise?: Promise<{ runc: string; conmon: string }>;
  private hostInfoPromise?: Promise<HostInfo>;
  private runcCli?: RuncCli;

  constructor(opts: RuncRuntimeOptions) {
    this.opts = opts;
    this.paths = instancePaths(opts.stateDir);
    this.templates = opts.templates;
    this.sleep = opts.sleep ?? realSleep;
    this.now = opts.now ?? Date.now;
    this.cgroupRoot = opts.cgroupRoot ?? CGROUP_ROOT;
  }

  // ---------------------------------------------------------------- setup

  async preflight(): Promise<void> {
    await preflight({ runcPath: this.opts.runcPath, conmonPath: this.opts.conmonPath });
  }

  private binaries(): Promise<{ runc: string; conmon: string }> {
    this.binariesPromise ??= (async () => {
      const runc = await findBinary(this.opts.runcPath ?? 'runc');
      if (!runc) throw new RuntimeUnavailableError('runc not found: install it with `apt-get install -y runc conmon`');
      const conmon = await findBinary(this.opts.conmonPath ?? 'conmon');
      if (!conmon) throw new RuntimeUnavailableError('conmon not found: install it with `apt-get install -y runc conmon`');
      return { runc, conmon };
    })();
    this.binariesPromise.catch(() => {
      this.binariesPromise = undefined;
    });
    return this.binariesPromise;
  }

  private async runc(): Promise<RuncCli> {
    if (!this.runcCli) {
      const { runc } = await this.binaries();
      this.runcCli ??= new RuncCli({ binary: runc, root: this.paths.runcRoot });
    }
    return this.runcCli;
  }

  private hostInfo(): Promise<HostInfo> {
    this.hostInfoPromise ??= (async () => {
      const cgroupMode = await detectCgroupMode(this.cgroupRoot);
      return {
        cgroupMode,
        swapAccounting: cgroupMode === 'v1' && (await hasSwapAccounting(this.cgroupRoot)),
        nofileHard: await hostNofileHard(),
        boundingCapabilities: await readBoundingCapabilities(),
      };
    })();
    return this.hostInfoPromise;
  }

  private idOf(key: string): { id: string; namespace: string; name: string; cp: ContainerPaths } {
    const { namespace, name } = splitKey(key);
    const id = containerIdOf(namespace, name);
    return { id, namespace, name, cp: containerPaths(this.paths, id) };
  }

  /** A runc container is ours when its annotations say so and match the key. */
  private isOurs(st: RuncState, namespace: string, name: string): boolean {
    const a = st.annotations ?? {};
    return a[ANNOTATION_OWNER] === OWNER_VALUE && a[ANNOTATION_NAMESPACE] === namespace && a[ANNOTATION_NAME] === name;
  }

  /** runc state of one of our containers; throws if runc has a container with that id that is not ours. */
  private async ourState(id: string, namespace: string, name: string): Promise<RuncState | undefined> {
    const st = await (await this.runc()).state(id);
    if (st && !this.isOurs(st, namespace, name)) {
      throw new Error(
        `runc container ${id} in ${this.paths.runcRoot} was not created by acetate for ${namespace}/${name}; acetate leaves it alone (remove it by hand: runc --root ${this.paths.runcRoot} delete --force ${id})`,
      );
    }
    return st;
  }

  // ---------------------------------------------------------------- reading

  private async processInfo(cp: ContainerPaths, st: RuncState | undefined, status: ContainerStatusFile): Promise<ProcessInfo> {
    if (isRunning(st)) return { state: 'running', pid: st!.pid, ...(status.startedAt ? { startedAt: status.startedAt } : {}) };
    if (st?.status === 'stopped') {
      const exitCode = await readExitCode(cp.exitFile);
      if (exitCode === undefined) {
        // runc says `stopped` as soon as the process is a zombie; until conmon has reaped it and
        // written its exit code, it is reported as still running (for a few milliseconds).
        const conmonPid = await readPid(cp.conmonPidFile);
        const pid = await readPid(cp.pidFile);
        if (conmonPid !== undefined && pid !== undefined && (await isAlive(conmonPid))) {
          return { state: 'running', pid, ...(status.startedAt ? { startedAt: status.startedAt } : {}) };
        }
      }
      const finishedAt = await stat(cp.exitFile).then(
        (s) => s.mtime.toISOString(),
        () => undefined,
      );
      return {
        state: 'exited',
        ...(status.startedAt ? { startedAt: status.startedAt } : {}),
        ...(finishedAt ? { finishedAt } : {}),
        ...(exitCode !== undefined ? { exitCode } : {}),
      };
    }
    // No runc state (never started, or stopped and cleaned up), or created but never started.
    return {
      state: 'absent',
      ...(status.startedAt ? { startedAt: status.startedAt } : {}),
      ...(status.finishedAt ? { finishedAt: status.finishedAt } : {}),
      ...(status.lastExitCode !== undefined ? { exitCode: status.lastExitCode } : {}),
    };
  }

  private async actual(id: string, record: AppliedRecord, st: RuncState | undefined): Promise<ActualContainer> {
    const cp = containerPaths(this.paths, id);
    const status = await readStatus(cp.status);
    const process = await this.processInfo(cp, st, status);
    const limits = process.state === 'running' ? await readLimits({ cgroupsPath: cp.cgroupsPath, root: this.cgroupRoot, mode: (await this.hostInfo()).cgroupMode }) : {};
    return {
      key: containerKey(record.namespace, record.name),
      namespace: record.namespace,
      name: record.name,
      id,
      applied: record,
      process,
      limits,
      restartCount: restartCountOf(status),
    };
  }

  async list(): Promise<ActualContainer[]> {
    let ids: string[];
    try {
      ids = await readdir(this.paths.containersDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot list ${this.paths.containersDir}`, { cause: err });
    }
    const records = (
      await mapLimit(ids.sort(), 64, async (id) => {
        const record = await readRecord(containerPaths(this.paths, id).record);
        return record ? { id, record } : undefined;
      })
    ).filter((r): r is { id: string; record: AppliedRecord } => r !== undefined);
    if (records.length === 0) return [];
    // One runc process for all containers.
    const states = new Map((await (await this.runc()).list()).map((s) => [s.id, s]));
    return mapLimit(records, 64, ({ id, record }) => {
      const st = states.get(id);
      return this.actual(id, record, st && this.isOurs(st, record.namespace, record.name) ? st : undefined);
    });
  }

  async get(key: string): Promise<ActualContainer | undefined> {
    const { id, namespace, name, cp } = this.idOf(key);
    const record = await readRecord(cp.record);
    if (!record) return undefined;
    const st = await (await this.runc()).state(id);
    return this.actual(id, record, st && this.isOurs(st, namespace, name) ? st : undefined);
  }

  async logs(key: string, opts: LogOptions = {}): Promise<string> {
    const { cp } = this.idOf(key);
    if (!(await readRecord(cp.record))) throw new NotFoundError(key);
    return readLogMessages(cp.log, { tail: opts.tail });
  }

  // ---------------------------------------------------------------- create / record

  async create(req: CreateRequest): Promise<void> {
    if (!DNS_LABEL.test(req.namespace)) throw new Error(`invalid namespace '${req.namespace}': must be a DNS-1123 label`);
    if (!DNS_SUBDOMAIN.test(req.name)) throw new Error(`invalid name '${req.name}': must be a DNS-1123 subdomain`);
    const key = containerKey(req.namespace, req.name);
    const { id, cp } = this.idOf(key);
    if (id.length > MAX_ID_LENGTH) throw new Error(`${key}: namespace and name are too long together (max ${MAX_ID_LENGTH} characters)`);
    await this.templates.resolve(req.spec.template); // fails early if the template is missing
    // Fails early on what the OCI config refuses (a mount path with '..', an unknown capability...).
    buildOciConfig({
      namespace: req.namespace,
      name: req.name,
      spec: req.spec,
      specHash: '',
      rootfsPath: cp.rootfs,
      cgroupsPath: cp.cgroupsPath,
      hostNofileHard: 1024,
      swapAccounting: false,
    });
    await this.locks.run(key, async () => {
      for (const d of [cp.dir, cp.upper, cp.work, cp.rootfs, cp.bundle, cp.exitDir]) await mkdir(d, { recursive: true, mode: 0o700 });
      const existing = await readRecord(cp.record);
      if (!existing) await writeJsonAtomic(cp.status, { starts: 0 } satisfies ContainerStatusFile);
      const record: AppliedRecord = {
        namespace: req.namespace,
        name: req.name,
        spec: req.spec,
        specHash: hashOf(req.spec),
        source: req.source,
        createdAt: existing?.createdAt ?? new Date(this.now()).toISOString(),
      };
      await writeJsonAtomic(cp.record, record);
    });
  }

  async recordApplied(key: string, record: AppliedRecord): Promise<void> {
    const { cp } = this.idOf(key);
    await this.locks.run(key, async () => {
      if (!(await readRecord(cp.record))) throw new NotFoundError(key);
      await writeJsonAtomic(cp.record, record);
    });
  }

  private async requireRecord(key: string, cp: ContainerPaths): Promise<AppliedRecord> {
    const record = await readRecord(cp.record);
    if (!record) throw new NotFoundError(key);
    return record;
  }

  // ---------------------------------------------------------------- start

  async start(key: string): Promise<{ pid: number }> {
    const { id, namespace, name, cp } = this.idOf(key);
    return this.locks.run(key, async () => {
      const record = await this.requireRecord(key, cp);
      const runc = await this.runc();
      const st = await this.ourState(id, namespace, name);
      if (isRunning(st)) return { pid: st!.pid };
      // A previous run exited (stopped), or an earlier start was interrupted (created, or a launch
      // that never reported): record the exit, clear everything it left, start from scratch.
      if (st?.status === 'stopped') await this.noteExit(cp);
      await this.scrub(id, cp, runc, { scan: false });
      this.startsInFlight++;
      try {
        try {
          return await this.startFresh(key, id, cp, record, runc);
        } catch (err) {
          // Another conmon (from an acetate killed while it launched one) got there first.
          if (!/already exists/.test(String((err as Error).message))) throw err;
          await this.scrub(id, cp, runc, { scan: true });
          return await this.startFresh(key, id, cp, record, runc);
        }
      } finally {
        this.startsInFlight--;
      }
    });
  }

  /**
   * Clear what an earlier run or interrupted start/remove of this container left: conmon and
   * `runc create` processes, runc state (also a half-written one), cgroups. With `scan` (or when a
   * launch never reported its result) /proc is searched for processes working on the bundle.
   */
  private async scrub(id: string, cp: ContainerPaths, runc: RuncCli, opts: { scan: boolean }): Promise<void> {
    const interrupted = opts.scan || ((await exists(cp.syncFile)) && (await readSync(cp.syncFile)) === undefined);
    if (interrupted) {
      const procs = await findProcessesByCmdline(cp.bundle);
      for (const p of procs) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      for (const p of procs) await this.waitGone(p.pid, KILL_WAIT_MS);
    }
    const runcDir = path.join(this.paths.runcRoot, id);
    if (await exists(runcDir)) await runc.delete(id, { force: true });
    await this.reapConmon(cp);
    if ((await exists(runcDir)) && !(await exists(path.join(runcDir, 'state.json')))) {
      await rm(runcDir, { recursive: true, force: true }); // a create interrupted before runc wrote its state
    }
    await this.removeContainerCgroups(cp);
    if (interrupted) await rm(cp.syncFile, { force: true });
  }

  private async startFresh(key: string, id: string, cp: ContainerPaths, record: AppliedRecord, runc: RuncCli): Promise<{ pid: number }> {
    const { conmon } = await this.binaries();
    const host = await this.hostInfo();
    for (const d of [cp.dir, cp.upper, cp.work, cp.rootfs, cp.bundle, cp.exitDir, this.paths.socketDir]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
    }
    const lower = await this.templates.resolve(record.spec.template);
    await mountOverlay({ lower, upper: cp.upper, work: cp.work, target: cp.rootfs });
    const config = buildOciConfig({
      namespace: record.namespace,
      name: record.name,
      spec: record.spec,
      specHash: record.specHash,
      rootfsPath: cp.rootfs,
      cgroupsPath: cp.cgroupsPath,
      hostNofileHard: host.nofileHard,
      swapAccounting: host.swapAccounting,
      boundingCapabilities: host.boundingCapabilities,
    });
    await writeFile(cp.config, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    await rm(cp.exitFile, { force: true });
    let pid: number;
    try {
      ({ pid } = await launchConmon({
        conmonPath: conmon,
        runcPath: runc.binary,
        runtimeArgs: runc.globalArgs(),
        id,
        cuuid: cp.cuuid,
        name: key,
        bundle: cp.bundle,
        pidFile: cp.pidFile,
        conmonPidFile: cp.conmonPidFile,
        logFile: cp.log,
        exitDir: cp.exitDir,
        socketDir: this.paths.socketDir,
        syncFile: cp.syncFile,
        conmonOut: cp.conmonOut,
        logSizeMax: this.opts.logSizeMax ?? 16 * 1024 * 1024,
        sleep: this.sleep,
      }));
      await runc.start(id);
    } catch (err) {
      // Leave nothing half-created behind: the next start() begins from scratch.
      await runc.delete(id, { force: true }).catch(() => undefined);
      await this.reapConmon(cp).catch(() => undefined);
      await unmountAll(cp.rootfs, { sleep: this.sleep }).catch(() => undefined);
      throw new Error(`cannot start ${key}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const status = await readStatus(cp.status);
    const next: ContainerStatusFile = { starts: status.starts + 1, startedAt: new Date(this.now()).toISOString() };
    if (status.lastExitCode !== undefined) next.lastExitCode = status.lastExitCode;
    await writeJsonAtomic(cp.status, next);
    return { pid };
  }

  /** Record the exit code of a run that ended (before its runc state is deleted). */
  private async noteExit(cp: ContainerPaths): Promise<number | undefined> {
    // runc reports `stopped` as soon as the process is a zombie; conmon writes the code right after.
    const conmonPid = await readPid(cp.conmonPidFile);
    await pollUntil(
      async () => (await readExitCode(cp.exitFile)) !== undefined || conmonPid === undefined || !(await isAlive(conmonPid)),
      { timeoutMs: EXIT_FILE_WAIT_MS, intervalMs: 20, sleep: this.sleep, now: this.now },
    );
    const exitCode = await readExitCode(cp.exitFile);
    const status = await readStatus(cp.status);
    const finishedAt = await stat(cp.exitFile).then(
      (s) => s.mtime.toISOString(),
      () => new Date(this.now()).toISOString(),
    );
    const next: ContainerStatusFile = { ...status, finishedAt };
    if (exitCode !== undefined) next.lastExitCode = exitCode;
    else delete next.lastExitCode;
    await writeJsonAtomic(cp.status, next);
    return exitCode;
  }

  /** conmon exits when its container has; make sure it did (it may wait on a never-started one). */
  private async reapConmon(cp: ContainerPaths): Promise<void> {
    const pid = await readPid(cp.conmonPidFile);
    if (pid === undefined) return;
    const gone = async () => !(await isAlive(pid));
    // Gone already, or the pid now belongs to another process.
    if ((await gone()) || !(await this.isOurConmon(pid, cp))) return;
    if (await pollUntil(gone, { timeoutMs: 2_000, intervalMs: 20, sleep: this.sleep, now: this.now })) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await pollUntil(gone, { timeoutMs: 5_000, intervalMs: 20, sleep: this.sleep, now: this.now });
  }

  private async isOurConmon(pid: number, cp: ContainerPaths): Promise<boolean> {
    const cmd = await readCmdline(pid);
    return cmd.includes('conmon') && cmd.includes(cp.bundle);
  }

  // ---------------------------------------------------------------- stop

  async stop(key: string, opts: StopOptions): Promise<{ exitCode?: number }> {
    const { id, namespace, name, cp } = this.idOf(key);
    return this.locks.run(key, async () => {
      await this.requireRecord(key, cp);
      return this.stopLocked(id, namespace, name, cp, opts.graceSeconds);
    });
  }

  private async waitGone(pid: number, timeoutMs: number): Promise<boolean> {
    return pollUntil(async () => !(await isAlive(pid)), {
      timeoutMs,
      intervalMs: this.opts.pollIntervalMs ?? 50,
      sleep: this.sleep,
      now: this.now,
    });
  }

  private async stopLocked(id: string, namespace: string, name: string, cp: ContainerPaths, graceSeconds: number): Promise<{ exitCode?: number }> {
    const runc = await this.runc();
    const st = await this.ourState(id, namespace, name);
    if (isRunning(st)) {
      await runc.kill(id, 'SIGTERM').catch(() => undefined); // it may just have exited
      if (!(await this.waitGone(st!.pid, Math.max(0, graceSeconds) * 1000))) {
        await runc.kill(id, 'SIGKILL', { all: true }).catch(() => runc.kill(id, 'SIGKILL').catch(() => undefined));
        if (!(await this.waitGone(st!.pid, KILL_WAIT_MS))) throw new Error(`${namespace}/${name}: pid ${st!.pid} survived SIGKILL`);
      }
    }
    // A run that ended (now, or before): its exit code. `created` never ran; nothing to record.
    const ran = st !== undefined && st.status !== 'created' && st.status !== 'creating';
    const exitCode = ran ? await this.noteExit(cp) : (await readStatus(cp.status)).lastExitCode;
    // Also clears what an interrupted start left (conmon, half-created runc state, cgroups).
    await this.scrub(id, cp, runc, { scan: false });
    await unmountAll(cp.rootfs, { sleep: this.sleep });
    await this.removeEmptyCgroupParent();
    return exitCode === undefined ? {} : { exitCode };
  }

  // ---------------------------------------------------------------- resize

  async updateResources(key: string, resources: Resources): Promise<ResizeResult> {
    const { id, namespace, name, cp } = this.idOf(key);
    return this.locks.run(key, async () => {
      const record = await this.requireRecord(key, cp);
      const st = await this.ourState(id, namespace, name);
      if (!isRunning(st)) {
        // Nothing runs: the new limits apply at the next start.
        await this.writeResources(cp, record, resources);
        return { limits: {}, deferred: [] };
      }
      const runc = await this.runc();
      const host = await this.hostInfo();
      const loc = { cgroupsPath: cp.cgroupsPath, root: this.cgroupRoot, mode: host.cgroupMode };
      const before = await readLimits(loc);
      const wantCpu = resources.cpuMillis === undefined ? undefined : Math.round((cpuQuotaOf(resources.cpuMillis) * 1000) / CPU_PERIOD_US);
      if (before.cpuMillis !== wantCpu || before.pids !== resources.pids) {
        await runc.update(id, cpuAndPidsUpdateFlags(resources));
      }
      const deferred: DeferredResize[] = [];
      const applied: Resources = { ...resources };
      if (!sameMemory(before.memoryBytes, resources.memoryBytes)) {
        try {
          await runc.update(id, memoryUpdateFlags(resources.memoryBytes, { swapAccounting: host.swapAccounting }));
        } catch (err) {
          if (!(err instanceof RuncError) || !/unable to set memory limit|device or resource busy|EBUSY/i.test(err.runcMessage)) throw err;
          const m = /current usage: (\d+)/.exec(err.runcMessage);
          const usage = m ? Number(m[1]) : await readMemoryUsage(loc);
          const target = resources.memoryBytes ?? 0;
          deferred.push({
            resource: 'memory',
            reason: `memory usage ${usage === undefined ? 'unknown' : formatBytes(usage)} is above the new limit ${formatBytes(target)}; the kernel refused it (the limit stays ${before.memoryBytes === undefined ? 'unlimited' : formatBytes(before.memoryBytes)})`,
          });
          if (record.spec.resources.memoryBytes === undefined) delete applied.memoryBytes;
          else applied.memoryBytes = record.spec.resources.memoryBytes;
        }
      }
      await this.writeResources(cp, record, applied);
      return { limits: await readLimits(loc), deferred };
    });
  }

  private async writeResources(cp: ContainerPaths, record: AppliedRecord, resources: Resources): Promise<void> {
    const clean: Resources = {};
    if (resources.cpuMillis !== undefined) clean.cpuMillis = resources.cpuMillis;
    if (resources.memoryBytes !== undefined) clean.memoryBytes = resources.memoryBytes;
    if (resources.pids !== undefined) clean.pids = resources.pids;
    const spec = { ...record.spec, resources: clean };
    await writeJsonAtomic(cp.record, { ...record, spec, specHash: hashOf(spec) } satisfies AppliedRecord);
  }

  // ---------------------------------------------------------------- remove

  async remove(key: string, opts: RemoveOptions): Promise<void> {
    const { id, namespace, name, cp } = this.idOf(key);
    await this.locks.run(key, async () => {
      const record = await readRecord(cp.record).catch(() => undefined);
      const runc = await this.runc();
      const st = await runc.state(id);
      const ours = st !== undefined && this.isOurs(st, namespace, name);
      if (ours && isRunning(st)) await this.stopLocked(id, namespace, name, cp, record?.spec.terminationGracePeriodSeconds ?? 0);
      // A runc container with this id that is not ours is left alone (and so are its cgroups).
      if (!st || ours) await this.scrub(id, cp, runc, { scan: false });
      // Unmount everything under the container dir before deleting anything in it.
      for (const m of await mountsUnder(cp.dir)) await unmountAll(m, { sleep: this.sleep });
      const left = await mountsUnder(cp.dir);
      if (left.length) throw new Error(`cannot remove ${key}: still mounted: ${left.join(', ')}`);
      await this.removeEmptyCgroupParent();
      const attachLink = path.join(this.paths.socketDir, cp.cuuid);
      for (const p of [attachLink, cp.bundle, cp.rootfs, cp.exitDir, cp.log, cp.pidFile, cp.conmonPidFile, cp.syncFile, cp.conmonOut, cp.status]) {
        await rm(p, { recursive: true, force: true });
      }
      if (!opts.keepPrivateArea) {
        await rm(cp.upper, { recursive: true, force: true });
        await rm(cp.work, { recursive: true, force: true });
      }
      // The record goes last: while it exists, list() shows the container and removal is retried.
      await rm(cp.record, { force: true });
      if (!opts.keepPrivateArea) await rm(cp.dir, { recursive: true, force: true });
    });
  }

  /** Cgroup dirs runc left (e.g. its state was lost): kill what is inside, then rmdir. */
  private async removeContainerCgroups(cp: ContainerPaths): Promise<void> {
    const dirs = await existingCgroupDirs(cp.cgroupsPath, this.cgroupRoot);
    if (dirs.length === 0) return;
    for (const d of dirs) {
      for (const pid of await cgroupProcs(d)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await pollUntil(async () => (await Promise.all(dirs.map(cgroupProcs))).every((p) => p.length === 0), {
      timeoutMs: KILL_WAIT_MS,
      intervalMs: 50,
      sleep: this.sleep,
      now: this.now,
    });
    for (const d of dirs) await removeCgroupDir(d);
  }

  /** rmdir /acetate-<hash> in every hierarchy once no container of this instance uses it. */
  private async removeEmptyCgroupParent(): Promise<void> {
    if (this.startsInFlight > 0) return;
    const rel = this.paths.cgroupParent.replace(/^\/+/, '');
    for (const h of await cgroupHierarchies(this.cgroupRoot)) {
      await removeCgroupDirIfEmpty(`${h}/${rel}`).catch(() => false);
    }
  }
}
