/**
 * start(): write config.json, have conmon create the container (runc create under conmon), join
 * the network, runc start. A start that fails leaves nothing half-created: the next one begins
 * from scratch.
 */
import { makeDirs, removePaths, writeSmallFile } from '../../util/small-file.js';
import type { AppliedRecord } from '../runtime.js';
import { reapConmon } from './cleanup.js';
import { launchConmon } from './conmon.js';
import { LauncherError } from './conmon-launcher.js';
import { causeOf } from '../../contracts/errors.js';
import { withReserveIfFull } from '../disk/room-reserve.js';
import { unmountAll } from '../../util/mounts.js';
import { buildOciConfig } from './oci-config.js';
import { isRunning } from './observe.js';
import type { RuncCli } from './runc-cli.js';
import type { RuncContext, Target } from './runc-context.js';
import { NetworkError } from '../network/driver.js';
import { netnsOwnerOf } from './network-hooks.js';
import { ociConfigInput, refuseStateDirMounts, stageStartHostPaths } from './config-input.js';
import { hostPathStagingDir, releaseStagedHostPaths } from '../walls/hostpath-open.js';
import { noteExit, noteStart } from './run-status.js';
import { keepAsPreviousLog } from './previous-log.js';
import { idmapDir, releaseIdmappedLayers } from '../walls/idmap.js';
import { endLeftRepairAtStart } from './repair-pause.js';

/** Starts the process with the applied spec; a running container is left alone. */
export async function startContainer(rc: RuncContext, key: string): Promise<{ pid: number }> {
  const t = rc.target(key);
  return rc.locks.run(key, async () => {
    const record = await rc.requireRecord(t);
    const runc = await rc.runc();
    const st = await rc.ourState(t);
    if (st && isRunning(st)) return { pid: st.pid };
    // A previous run exited (stopped), or an earlier start was interrupted (created, or a launch
    // that never reported): record the exit, clear everything it left, start from scratch.
    if (st?.status === 'stopped') await noteExit(rc, t.cp);
    await rc.scrub(t, runc, false);
    // The private area's filesystem: attached (again after a reboot), grown or shrunk to the record.
    await rc.disk.prepare(t.cp, record);
    rc.startsInFlight++;
    try {
      try {
        return await launch(rc, t, record, runc);
      } catch (err) {
        // Another conmon (from an acetate killed while it launched one) got there first.
        if (!/already exists/.test(String((err as Error).message))) throw err;
        await rc.scrub(t, runc, true);
        return await launch(rc, t, record, runc);
      }
    } finally {
      rc.startsInFlight--;
    }
  });
}

/**
 * Write config.json, have conmon create the container, start it. The root overlay is mounted by
 * runc inside the container's mount namespace (no `mount` process, nothing mounted on the node).
 */
async function launch(rc: RuncContext, t: Target, record: AppliedRecord, runc: RuncCli): Promise<{ pid: number }> {
  try {
    return await launchOnce(rc, t, record, runc);
  } catch (err) {
    // Whatever failed after the layers were mounted idmapped (the OCI config, a write), they go.
    await releaseIdmappedLayers(idmapDir(t.cp.runDir)).catch(() => undefined);
    throw err;
  }
}

async function launchOnce(rc: RuncContext, t: Target, record: AppliedRecord, runc: RuncCli): Promise<{ pid: number }> {
  const { cp } = t;
  const layers = rc.disk.layers(cp, record);
  await makeDirs([layers.upper, layers.work, cp.rootfs, cp.bundle, cp.exitDir, rc.paths.socketDir]);
  // The root's mode (0755) is set with its owner by ociConfigInput's preparePrivateArea (userns.ts).
  await refuseStateDirMounts(rc, record.spec.mounts);
  // A rootfs left mounted on the node by an older acetate would hide the overlay's target.
  await unmountAll(cp.rootfs, { sleep: rc.waiter.sleep });
  // Opened and checked where they lead now (a dir swapped for a symlink since admission is
  // refused here), and bound as opened at a staging dir: gone once runc has created the container.
  const hostPathSources = await stageStartHostPaths(rc, record, cp);
  try {
    return await launchChecked(rc, t, record, runc, hostPathSources);
  } finally {
    // A failure here must not turn a start into an error: the next scrub (start, removal) retries it.
    if (hostPathSources.length) await releaseStagedHostPaths(hostPathStagingDir(cp.runDir), hostPathSources).catch(() => undefined);
  }
}

async function launchChecked(rc: RuncContext, t: Target, record: AppliedRecord, runc: RuncCli, hostPathSources: readonly string[]): Promise<{ pid: number }> {
  const { cp } = t;
  const { conmon } = await rc.binaries();
  const input = await ociConfigInput(rc, record, cp, true);
  // Its network namespace is its user namespace's (network/netns.ts): made after the range is known.
  const network = await rc.net.prepare(t.id, record, netnsOwnerOf(input.userNamespace));
  if (network?.netnsPath) await endLeftRepairAtStart(t.id, cp, network.netnsPath);
  const config = buildOciConfig({ ...input, hostPathSources, ...(network ? { network } : {}) });
  await writeSmallFile(cp.config, `${JSON.stringify(config, null, 2)}\n`);
  await removePaths([cp.exitFile]);
  // A new process, a new log: the last run's becomes the previous log (bounded as it was by
  // --log-size-max), as Kubernetes keeps the previous container's for `logs --previous`.
  await keepAsPreviousLog(cp);
  let pid: number;
  let released: Promise<void> | undefined;
  // The plugins' ADD runs while conmon has runc create the container (which only joins the
  // namespace); the process starts (runc start) after both.
  const attached = network?.finish();
  attached?.catch(() => undefined); // awaited below; a failure before that must not go unhandled
  try {
    // A container that filled its disk: overlayfs still needs an inode for its work dir (withReserveIfFull).
    ({ pid } = await withReserveIfFull(rc.disk.layers(cp, record).upper, () =>
      launchConmon({
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
        socketDir: rc.paths.socketDir,
        syncFile: cp.syncFile,
        conmonOut: cp.conmonOut,
        logSizeMax: rc.opts.logSizeMax ?? 16 * 1024 * 1024,
        // Born out of the cgroup of the unit (or shell) that runs acetate: see conmon-launcher.ts.
        launcher: rc.launcher,
      }),
    ));
    // runc create has mounted the overlay (with its own clones of the idmapped layers) in the
    // container's mount namespace: the node's copies go now (while the network attaches and the
    // process starts), nothing stays mounted on the node.
    released = releaseIdmappedLayers(idmapDir(cp.runDir));
    released.catch(() => undefined); // awaited below
    await attached;
    await runc.start(t.id, { initPid: pid });
  } catch (err) {
    // The network's own failure, when it failed: runc failing beside it (the namespace a failed
    // ADD removes, gone while runc create opened it) is its consequence, not the cause.
    const attachFailure = await attached?.then(
      () => undefined,
      (e: unknown) => e,
    );
    // Leave nothing half-created behind: the next start() begins from scratch. A launcher that died
    // or hung may have forked this conmon already, which would go on to create the container after
    // the cleanup below: what names the bundle is looked for and killed, twice (a fork in flight
    // during the first look), with whatever it left in runc and in the container's cgroups.
    if (causeOf(err, LauncherError)) for (let look = 0; look < 2; look++) await rc.scrub(t, runc, true).catch(() => undefined);
    await runc.delete(t.id, { force: true }).catch(() => undefined);
    await reapConmon(cp, rc.waiter).catch(() => undefined);
    await (released ?? releaseIdmappedLayers(idmapDir(cp.runDir))).catch(() => undefined);
    await unmountAll(cp.rootfs, { sleep: rc.waiter.sleep }).catch(() => undefined);
    if (attachFailure instanceof NetworkError) throw attachFailure; // its reason (PortConflict, SubnetFull...) is the condition's
    if (err instanceof NetworkError) throw err;
    throw new Error(`cannot start ${t.key}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  await released;
  await noteStart(rc, cp);
  return { pid };
}
