/**
 * remove(): stop, unmount, tear the network down, and delete the container's files: the run
 * dir's part first, the record last (or the whole dir in one rename), so that an interrupted
 * removal is seen by the next list() and retried.
 */
import { renameSync } from 'node:fs';
import { readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { removePaths } from '../../util/small-file.js';
import type { RemoveOptions } from '../runtime.js';
import { runcPidTempOf } from './conmon.js';
import { mountsUnder, unmountAll } from '../../util/mounts.js';
import { isOurs, isRunning } from './observe.js';
import type { ContainerPaths } from './paths.js';
import type { RuncContext } from './runc-context.js';
import { forgetFiles } from '../../util/json-file.js';
import { readRecord } from './store.js';
import { stopLocked } from './stop.js';
import { sweepTempDirsOf, withTempDir } from './temp-dirs.js';
import { keepAsPreviousLog } from './previous-log.js';
import { readIds, releaseIdRanges } from '../walls/id-ranges.js';
import { markerOf } from './repair-pause.js';
import { idRangeStore } from '../walls/walls.js';
import { layersDirOf, releaseLayersMount } from '../walls/host-layer.js';

export async function removeContainer(rc: RuncContext, key: string, opts: RemoveOptions): Promise<void> {
  const t = rc.target(key);
  const { cp } = t;
  await rc.locks.run(key, async () => {
    const record = await readRecord(cp.record).catch(() => undefined);
    const runc = await rc.runc();
    const st = await runc.state(t.id);
    const ours = st !== undefined && isOurs(st, t.namespace, t.name);
    if (ours && isRunning(st)) await stopLocked(rc, t, record?.spec.terminationGracePeriodSeconds ?? 0);
    // A runc container with this id that is not ours is left alone (and so are its cgroups).
    if (!st || ours) await rc.scrub(t, runc, false);
    // Unmount everything under the container dir before deleting anything in it.
    for (const m of await mountsUnder(cp.dir)) await unmountAll(m, { sleep: rc.waiter.sleep });
    const left = await mountsUnder(cp.dir);
    if (left.length) throw new Error(`cannot remove ${key}: still mounted: ${left.join(', ')}`);
    // The network first: its port holders live in the conmons' cgroup, which must be empty to go.
    await rc.net.tearDown(t.id);
    await rc.removeEmptyCgroupParent();
    // The run dir's part first: while the record exists, list() shows the container and an
    // interrupted removal is retried, so nothing of it can be left behind without a record.
    await removeRunFiles(rc, cp);
    // A replace keeps the log as the previous one; a destroy removes the previous one first (while
    // the record exists an interrupted removal is retried, so it is never left behind).
    if (opts.keepLog) await keepAsPreviousLog(cp);
    else await removePaths([cp.previousLog]);
    if (opts.keepPrivateArea) {
      await removePaths([cp.rootfs, cp.log, cp.status], { recursive: true });
      // The record goes last: while it exists, list() shows the container and removal is retried.
      await removePaths([cp.record]);
    } else {
      const ids = await readIds(cp.dir);
      // The whole directory, record included, leaves in one rename; what a SIGKILL leaves of
      // the deletion is swept by the next list() of the lock holder.
      await withTempDir(rc, 'removing', t.id, async (trash) => {
        try {
          renameSync(cp.dir, trash);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      });
      // Its id range is free: the node's records say so at once (a failure here is only a late note).
      await releaseIdRanges(idRangeStore(rc.paths, rc.opts.isolation ?? {}), cp.dir, ids).catch(() => undefined);
    }
    // What an earlier removal of this container, SIGKILLed after its rename, left in the trash.
    await sweepTempDirsOf(rc, t.id);
    forgetFiles([cp.record, cp.status]);
    rc.pathsById.delete(t.id);
  });
  // The last container gone: the host view's layers' tmpfs goes too (host-layer.ts).
  // A detach that fails leaves only that tmpfs (no container's data), tried again at the next removal.
  if (!opts.keepPrivateArea) await releaseLayersMount(layersDirOf(rc.paths.runDir, rc.paths.stateDir), rc.paths.containersDir).catch(() => undefined);
}

/**
 * A container's files in the run dir, one by one (never the dir recursively: with
 * `--run-dir <stateDir>`, the earlier layout, it is the container dir itself), then the dir if
 * that left it empty.
 */
async function removeRunFiles(rc: RuncContext, cp: ContainerPaths): Promise<void> {
  await removePaths(
    [
      path.join(rc.paths.socketDir, cp.cuuid),
      cp.bundle,
      cp.exitDir,
      path.join(cp.runDir, 'etc'),
      cp.pidFile,
      runcPidTempOf(cp.pidFile),
      cp.conmonPidFile,
      cp.syncFile,
      cp.conmonOut,
      // An interrupted repair's marker (repair-pause.ts): its hold went with the namespace.
      markerOf(cp),
    ],
    { recursive: true },
  );
  // Pid files of execs a killed acetate left (see exec.ts).
  const execPids = (await readdir(cp.runDir).catch(() => [] as string[])).filter((n) => n.startsWith('exec-') && n.endsWith('.pid'));
  await removePaths(execPids.map((n) => path.join(cp.runDir, n)));
  if (cp.runDir !== cp.dir) await rmdir(cp.runDir).catch(() => undefined);
}
