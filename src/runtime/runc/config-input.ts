/**
 * What a container's OCI config is built from (template or image, isolation, host facts), and the
 * mounts refused before one is built. Shared by check/create (which only build it, to fail early)
 * and start (which writes it).
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { AppliedRecord } from '../runtime.js';
import { ensureImageRootfs } from '../../images/store.js';
import { OciConfigError, type OciConfigInput } from './oci-config.js';
import { idRangeStore, isolationInputs } from '../walls/walls.js';
import { refuseOwnDirAncestors, type OwnDir } from '../walls/hostpath-guard.js';
import { hostPathStagingDir, openHostPaths, stageHostPaths } from '../walls/hostpath-open.js';
import { refuseMissingHostPaths } from '../walls/mount-checks.js';
import { otherInstanceDirs } from '../walls/instances.js';
import { readIdRecordsSync } from '../walls/id-records.js';
import type { ContainerPaths } from './paths.js';
import type { RuncContext } from './runc-context.js';

export async function ociConfigInput(
  rc: RuncContext,
  record: Pick<AppliedRecord, 'namespace' | 'name' | 'spec' | 'specHash'>,
  cp: ContainerPaths,
  prepare = false,
): Promise<OciConfigInput> {
  const host = await rc.hostInfo();
  if (record.spec.init !== false && host.init.error) throw host.init.error;
  // An image is pulled here if it is not on the node yet (create and replace's check come first).
  const image = record.spec.image ? await ensureImageRootfs(rc.images, record.spec.image) : undefined;
  const template = image ? image.lowerDirs : await rc.templates.resolve(record.spec.template);
  const iso = { paths: rc.paths, settings: rc.opts.isolation ?? {}, hostRoot: rc.templates.hostRoot, boundingCapabilities: host.boundingCapabilities };
  // With resources.disk the private area's upper and work dirs live on its own filesystem.
  const { lower, ...isolation } = await isolationInputs(record, { ...cp, ...rc.disk.layers(cp, record) }, template, iso, { prepare });
  return {
    ...isolation,
    ...(image ? { image: { config: image.config, passwd: image.passwd, group: image.group } } : {}),
    namespace: record.namespace,
    name: record.name,
    spec: record.spec,
    specHash: record.specHash,
    rootfsPath: cp.rootfs,
    rootfsOverlay: { lower, ...rc.disk.layers(cp, record) },
    cgroupsPath: cp.cgroupsPath,
    hostNofileHard: host.nofileHard,
    swapAccounting: host.swapAccounting,
    boundingCapabilities: host.boundingCapabilities,
    hostRoot: rc.templates.hostRoot,
    initPath: host.init.path,
  };
}

/**
 * acetate's state and run dir, and every other instance's the node knows of (walls/instances.ts),
 * as given and as their symlinks resolve.
 */
export async function ownDirs(rc: RuncContext): Promise<OwnDir[]> {
  const own: OwnDir[] = [];
  const records = readIdRecordsSync(idRangeStore(rc.paths, rc.opts.isolation ?? {}).recordsFile).map((r) => r.owner.stateDir);
  const others = await otherInstanceDirs(rc.templates.hostRoot, records);
  for (const { dir, what } of [{ dir: rc.paths.stateDir, what: 'state dir' }, { dir: rc.paths.runDir, what: 'run dir' }, ...others]) {
    own.push({ dir, what }, { dir: await realpath(dir).catch(() => dir), what });
  }
  return own;
}

/**
 * At a start: every hostPath opened, checked where it leads now against acetate's dirs and the
 * namespace's level, and the opened dirs staged under the container's run dir
 * (../walls/hostpath-open.ts): runc's mount sources. The caller releases the staging dir once
 * runc has created the container.
 */
export async function stageStartHostPaths(rc: RuncContext, record: Pick<AppliedRecord, 'namespace' | 'name' | 'spec'>, cp: ContainerPaths): Promise<string[]> {
  if (record.spec.mounts.length === 0) return []; // nothing staged, no mountinfo read: most containers
  const staging = hostPathStagingDir(cp.runDir);
  const rule = rc.hostPathRules?.(record.namespace);
  const opened = openHostPaths(`${record.namespace}/${record.name}`, record.spec.mounts, {
    hostRoot: rc.templates.hostRoot,
    own: await ownDirs(rc),
    ...(rule ? { rule } : {}),
  });
  return stageHostPaths(opened, staging);
}

/**
 * A container must never see acetate's own state or run dir: with them, it could rewrite other
 * containers' records and OCI configs (e.g. make one privileged at its next start), or the pid
 * files acetate signals.
 */
export async function refuseStateDirMounts(rc: RuncContext, mounts: readonly { hostPath: string }[]): Promise<void> {
  if (mounts.length === 0) return;
  const own = await ownDirs(rc);
  for (const m of mounts) {
    const host = path.resolve(path.join(rc.templates.hostRoot, m.hostPath));
    const real = await realpath(host).catch(() => host);
    const hit = own.find(({ dir }) => [host, real].some((p) => p === dir || p.startsWith(`${dir}/`)));
    if (hit) throw new OciConfigError(`mount hostPath '${m.hostPath}' is inside acetate's ${hit.what} ${hit.dir}: refused`);
  }
  await refuseOwnDirAncestors(mounts, own, rc.templates.hostRoot);
  // After the check above: a path inside acetate's dirs is refused for that, whether it exists yet or not.
  refuseMissingHostPaths(mounts, rc.templates.hostRoot);
}
