/**
 * Layout of acetate's directories. Everything an instance owns lives under its state dir and its
 * run dir, and the cgroup parent carries a hash of the state dir, so two instances with different
 * state dirs never meet.
 *
 * The state dir holds what must survive a reboot; the run dir what describes processes, which a
 * reboot ends: it belongs on a tmpfs, as runc's own /run/runc and podman's and CRI-O's runtime
 * state do. After a reboot it is empty, so no runc state or pid file can describe a process of the
 * previous boot, and the files written for every start (conmon's fifos, sockets, pid and sync
 * files, runc's state) cost no disk I/O.
 *
 *   <stateDir>/templates/<name>/rootfs     imported templates (see ../templates.ts)
 *   <stateDir>/containers/<id>/
 *       record.json    the AppliedRecord (present = the container exists)
 *       status.json    start count, last exit code, timestamps (absent = never started)
 *       upper/ work/   the private area (overlay upper and work dirs)
 *       rootfs/        root.path: runc mounts the overlay on it in the container's mount namespace
 *       container.log  stdout/stderr in Kubernetes' log format (written by conmon)
 *   <stateDir>/previous-logs/<id>.log      the log of the container before its last restart or
 *                                          replace (logs --previous); outside the container dir,
 *                                          which a replace may delete whole
 *
 *   <runDir>/read-cache.json               what the lock holder parsed of the files below, for get/plan (read-cache.ts)
 *   <runDir>/manifest-cache.json           what apply/run parsed of the manifests, for plan (sources/files/manifest-cache-file.ts)
 *   <runDir>/ids-claimed                   this boot's lock holder claimed every container's id range for the node (walls/id-ranges.ts claimExistingRanges)
 *   <runDir>/runc/                         acetate's own `runc --root`
 *   <runDir>/sockets/                      conmon attach sockets (short names)
 *   <runDir>/containers/<id>/
 *       bundle/        OCI bundle (config.json, written at each start; conmon adds its fifos)
 *       exits/<id>     exit code (written by conmon)
 *       pid conmon.pid conmon.sync conmon.out
 *       frozen-for-room   a pause for room not ended yet: the init's pid (freeze-for-room.ts)
 *
 * The run dir is /run/acetate for the default state dir, <stateDir>/run for any other, or what
 * --run-dir / $ACETATE_RUN_DIR say.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from '../default-dirs.js';

export { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR };

export interface InstancePaths {
  stateDir: string;
  /** Volatile runtime state (see above). */
  runDir: string;
  runcRoot: string;
  /** Per-container runtime files: `<runDir>/containers`. */
  runContainersDir: string;
  containersDir: string;
  templatesDir: string;
  socketDir: string;
  /** First 8 hex digits of sha256(stateDir). */
  instanceHash: string;
  /** Cgroup parent of every container of this instance, relative to a hierarchy root: `/acetate-<hash8>`. */
  cgroupParent: string;
}

export interface ContainerPaths {
  id: string;
  /** `<stateDir>/containers/<id>`: record, status, private area, log. */
  dir: string;
  /** `<runDir>/containers/<id>`: bundle, exit dir, pid and conmon files. */
  runDir: string;
  record: string;
  status: string;
  upper: string;
  work: string;
  rootfs: string;
  bundle: string;
  config: string;
  log: string;
  /** The log before the last restart or replace (`logs --previous`). */
  previousLog: string;
  exitDir: string;
  exitFile: string;
  pidFile: string;
  conmonPidFile: string;
  syncFile: string;
  conmonOut: string;
  /** Short id used as conmon's `--cuuid` (names the attach socket, whose path must stay short). */
  cuuid: string;
  /** `cgroupsPath` of the OCI config: `/acetate-<hash8>/<id>`. */
  cgroupsPath: string;
}

export function instanceHashOf(stateDir: string): string {
  return createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 8);
}

/** The run dir used when none is given: /run/acetate for the default state dir, else <stateDir>/run. */
export function defaultRunDirOf(stateDir: string): string {
  const dir = path.resolve(stateDir);
  return dir === DEFAULT_STATE_DIR ? DEFAULT_RUN_DIR : path.join(dir, 'run');
}

export function instancePaths(stateDir: string, runDir?: string): InstancePaths {
  const dir = path.resolve(stateDir);
  const run = path.resolve(runDir ?? defaultRunDirOf(dir));
  const instanceHash = instanceHashOf(dir);
  return {
    stateDir: dir,
    runDir: run,
    runcRoot: path.join(run, 'runc'),
    runContainersDir: path.join(run, 'containers'),
    containersDir: path.join(dir, 'containers'),
    templatesDir: path.join(dir, 'templates'),
    socketDir: path.join(run, 'sockets'),
    instanceHash,
    cgroupParent: `/acetate-${instanceHash}`,
  };
}

/** Longest id we accept: it names a directory, a runc state dir and a cgroup (255 bytes max each). */
export const MAX_ID_LENGTH = 250;

/** Runtime id of a container: `<namespace>_<name>` (DNS-1123 names have no `_`, so it splits back). */
export function containerIdOf(namespace: string, name: string): string {
  return `${namespace}_${name}`;
}

export function keyOfId(id: string): { namespace: string; name: string; key: string } | undefined {
  const i = id.indexOf('_');
  if (i <= 0 || i === id.length - 1) return undefined;
  const namespace = id.slice(0, i);
  const name = id.slice(i + 1);
  return { namespace, name, key: `${namespace}/${name}` };
}

export function containerPaths(instance: InstancePaths, id: string): ContainerPaths {
  // Plain concatenation: containersDir is absolute and normalized, id a plain name (see
  // containerIdOf), and list() computes this for every container on every pass.
  const dir = `${instance.containersDir}/${id}`;
  const run = `${instance.runContainersDir}/${id}`;
  const exitDir = `${run}/exits`;
  return {
    id,
    dir,
    runDir: run,
    record: `${dir}/record.json`,
    status: `${dir}/status.json`,
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    rootfs: `${dir}/rootfs`,
    bundle: `${run}/bundle`,
    config: `${run}/bundle/config.json`,
    log: `${dir}/container.log`,
    previousLog: `${instance.stateDir}/previous-logs/${id}.log`,
    exitDir,
    exitFile: `${exitDir}/${id}`,
    pidFile: `${run}/pid`,
    conmonPidFile: `${run}/conmon.pid`,
    syncFile: `${run}/conmon.sync`,
    conmonOut: `${run}/conmon.out`,
    get cuuid() {
      return createHash('sha256').update(id).digest('hex').slice(0, 12);
    },
    cgroupsPath: `${instance.cgroupParent}/${id}`,
  };
}

/** `<runDir>/containers/<id>/frozen-for-room`: a pause for room not ended yet (freeze-for-room.ts). */
export function frozenMarkerOf(cp: Pick<ContainerPaths, 'runDir'>): string {
  return path.join(cp.runDir, 'frozen-for-room');
}
