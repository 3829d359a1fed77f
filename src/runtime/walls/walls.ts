/**
 * The walls of a container, the one call the runtime makes for them (../runc/runc-context.ts and
 * config-input.ts): what the host template hides (host-masks.ts), the /proc and /sys masks
 * (masks.ts), the capabilities (capabilities.ts), the seccomp filter (seccomp.ts) and the user
 * namespace (userns.ts), with the private area and template prepared for the ids the container runs
 * with. hostpath-guard.ts and mount-checks.ts check the mounts a spec asks for. This folder knows
 * nothing of runc: it returns the parts of the OCI config, and runc/oci-config.ts puts them together.
 */
import type { AppliedRecord } from '../runtime.js';
import { idmapDir, mountIdmappedLayers } from './idmap.js';
import { HOST_TEMPLATE, hostMaskRules, isolationMounts, resolveHostMasks, type HostIsolationOptions } from './host-masks.js';
import { resolveCapabilities } from './capabilities.js';
import type { OciMount } from './oci-mount.js';
import { seccompFor, type OciSeccomp } from './seccomp.js';
import { DEFAULT_USERNS_RANGE, ensureTraversable, preparePrivateArea, userNamespaceFor, type IdRange, type OciUserNamespace } from './userns.js';

/** The node's dirs a container must not see (runc/paths.ts InstancePaths has them). */
export interface WallPaths {
  stateDir: string;
  runDir: string;
}

/** A container's own dirs (runc/paths.ts ContainerPaths has them). */
export interface WallContainerPaths {
  dir: string;
  /** <runDir>/containers/<id>: the idmapped layers are mounted under it (see idmap.ts). */
  runDir: string;
  upper: string;
  work: string;
  rootfs: string;
}

/** The parts of the OCI config the walls give (fields of runc/oci-config.ts OciConfigInput). */
export interface WallInputs {
  lower: string | string[];
  isolationMounts?: OciMount[];
  seccomp?: OciSeccomp;
  userNamespace?: OciUserNamespace;
}

export interface IsolationSettings {
  /** More paths the host template hides on this node (ACETATE_HOST_HIDE). */
  hostHide?: string[];
  /** Default hidden paths shown on this node after all (ACETATE_HOST_SHOW). */
  hostShow?: string[];
  /** The node's id range for user namespaces (ACETATE_USERNS_RANGE). */
  usernsRange?: IdRange;
  /** The RuntimeDefault seccomp profile file (default: Debian's containers-common one). */
  seccompProfile?: string;
}

export interface IsolationContext {
  paths: WallPaths;
  settings: IsolationSettings;
  hostRoot: string;
  boundingCapabilities: readonly string[];
}

export function hostIsolationOptions(ctx: Pick<IsolationContext, 'paths' | 'settings'>): HostIsolationOptions {
  return { stateDir: ctx.paths.stateDir, runDir: ctx.paths.runDir, hide: ctx.settings.hostHide, show: ctx.settings.hostShow };
}

/**
 * The OciConfigInput fields of isolation, for a template whose lower dir is `lower`. With
 * `prepare` (a start, not a check), the private area is re-owned for the ids in use and, with a
 * user namespace, the layers are mounted idmapped to its range (idmap.ts): the returned `lower`
 * is then those mounts, which the caller releases once runc has created the container.
 */
export async function isolationInputs(
  record: Pick<AppliedRecord, 'spec'>,
  cp: WallContainerPaths,
  lower: string | string[],
  ctx: IsolationContext,
  opts: { prepare: boolean },
): Promise<WallInputs> {
  const { spec } = record;
  const range = ctx.settings.usernsRange ?? DEFAULT_USERNS_RANGE;
  const userNamespace = userNamespaceFor(spec.security.hostUsers, range);
  const caps = resolveCapabilities(spec.security).filter((c) => ctx.boundingCapabilities.includes(c));
  const seccomp = seccompFor(spec.security.seccompProfile, {
    capabilities: caps,
    privileged: spec.security.privileged,
    defaultProfile: ctx.settings.seccompProfile,
  });
  const isolation =
    spec.template === HOST_TEMPLATE ? isolationMounts(await resolveHostMasks(hostMaskRules(hostIsolationOptions(ctx)), ctx.hostRoot)) : undefined;
  let lowerDir = lower;
  if (opts.prepare) {
    if (userNamespace) {
      const own = [ctx.paths.stateDir, ctx.paths.runDir];
      const layers = typeof lower === 'string' ? [lower] : lower;
      const dir = idmapDir(cp.runDir);
      await ensureTraversable(dir, own); // the overlay is mounted by the range's root, through dir
      await ensureTraversable(cp.dir, own); // the container dir itself: see preparePrivateArea
      // With resources.disk the upper dir sits on the disk image's root (disk/), made 0700 root
      // like the container dir was at the image's creation: the range root must cross it too.
      await ensureTraversable(cp.upper, own);
      const mapped = await mountIdmappedLayers(dir, layers, userNamespace);
      lowerDir = typeof lower === 'string' ? mapped[0]! : mapped;
    }
    await preparePrivateArea({ dir: cp.dir, upper: cp.upper, work: cp.work, rootfs: cp.rootfs }, userNamespace);
  }
  return {
    lower: lowerDir,
    ...(isolation ? { isolationMounts: isolation } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(userNamespace ? { userNamespace } : {}),
  };
}
