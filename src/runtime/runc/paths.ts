/**
 * Layout of acetate's state directory. Everything an instance owns lives under it, and the cgroup
 * parent carries a hash of it, so two instances with different state dirs never meet.
 *
 *   <stateDir>/runc/                       acetate's own `runc --root`
 *   <stateDir>/sockets/                    conmon attach sockets (short names)
 *   <stateDir>/templates/<name>/rootfs     imported templates (see ../templates.ts)
 *   <stateDir>/containers/<id>/
 *       record.json    the AppliedRecord (present = the container exists)
 *       status.json    start count, last exit code, timestamps
 *       upper/ work/   the private area (overlay upper and work dirs)
 *       rootfs/        root.path: runc mounts the overlay on it in the container's mount namespace
 *       bundle/        OCI bundle (config.json; conmon adds its fifos)
 *       container.log  stdout/stderr in Kubernetes' log format (written by conmon)
 *       exits/<id>     exit code (written by conmon)
 *       pid conmon.pid conmon.sync conmon.out
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

export interface InstancePaths {
  stateDir: string;
  runcRoot: string;
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
  dir: string;
  record: string;
  status: string;
  upper: string;
  work: string;
  rootfs: string;
  bundle: string;
  config: string;
  log: string;
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

export function instancePaths(stateDir: string): InstancePaths {
  const dir = path.resolve(stateDir);
  const instanceHash = instanceHashOf(dir);
  return {
    stateDir: dir,
    runcRoot: path.join(dir, 'runc'),
    containersDir: path.join(dir, 'containers'),
    templatesDir: path.join(dir, 'templates'),
    socketDir: path.join(dir, 'sockets'),
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
  const exitDir = `${dir}/exits`;
  return {
    id,
    dir,
    record: `${dir}/record.json`,
    status: `${dir}/status.json`,
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    rootfs: `${dir}/rootfs`,
    bundle: `${dir}/bundle`,
    config: `${dir}/bundle/config.json`,
    log: `${dir}/container.log`,
    exitDir,
    exitFile: `${exitDir}/${id}`,
    pidFile: `${dir}/pid`,
    conmonPidFile: `${dir}/conmon.pid`,
    syncFile: `${dir}/conmon.sync`,
    conmonOut: `${dir}/conmon.out`,
    get cuuid() {
      return createHash('sha256').update(id).digest('hex').slice(0, 12);
    },
    cgroupsPath: `${instance.cgroupParent}/${id}`,
  };
}
