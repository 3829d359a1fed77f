/**
 * The walls of a container, the one call the runtime makes for them (../runc/runc-context.ts and
 * config-input.ts): what the host template shows (host-masks.ts, carried out by host-view.ts), the /proc and /sys masks
 * (masks.ts), the capabilities (capabilities.ts), the seccomp filter (seccomp.ts) and the user
 * namespace (userns.ts), with the private area and template prepared for the ids the container runs
 * with. hostpath-guard.ts and mount-checks.ts check the mounts a spec asks for. This folder knows
 * nothing of runc: it returns the parts of the OCI config, and runc/oci-config.ts puts them together.
 */
import type { AppliedRecord } from '../runtime.js';
import { InvalidError } from '../../contracts/errors.js';
import { HOST_TEMPLATE, HOST_TMPFS, type HostView, type HostViewOptions } from './host-masks.js';
import { applyHostView, currentHostView } from './host-view.js';
import { resolveCapabilities } from './capabilities.js';
import type { OciMount } from './oci-mount.js';
import { seccompFor, type OciSeccomp } from './seccomp.js';
import {
  DEFAULT_USERNS_RANGE,
  ensureTraversable,
  preparePrivateArea,
  shiftedTemplate,
  userNamespaceFor,
  type IdRange,
  type OciUserNamespace,
} from './userns.js';

/** The node's dirs a container must not see (runc/paths.ts InstancePaths has them). */
export interface WallPaths {
  stateDir: string;
  runDir: string;
}

/** A container's own dirs (runc/paths.ts ContainerPaths has them). */
export interface WallContainerPaths {
  dir: string;
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

export function hostIsolationOptions(ctx: Pick<IsolationContext, 'paths' | 'settings'>): Omit<HostViewOptions, 'packageOwned'> {
  return { stateDir: ctx.paths.stateDir, runDir: ctx.paths.runDir, hide: ctx.settings.hostHide, show: ctx.settings.hostShow };
}

/** The host template's view of this node (what `template describe host` prints, what a start writes). */
export function hostViewOf(ctx: Pick<IsolationContext, 'paths' | 'settings' | 'hostRoot'>): Promise<HostView> {
  return currentHostView(ctx.hostRoot, hostIsolationOptions(ctx), ctx.paths.stateDir);
}

/**
 * The host template's mounts: only the private /run (a tmpfs, as on any machine: emptied at each
 * start). Everything else it hides is marked in the private area (host-view.ts), not mounted.
 */
export function hostTemplateMounts(view: { tmpfs: readonly { path: string }[] }): OciMount[] {
  return view.tmpfs.map((t) => ({ destination: t.path, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] }));
}

/**
 * The OciConfigInput fields of isolation, for a template whose lower dir is `lower`. With
 * `prepare` (a start, not a check), the private area is re-owned for the ids in use and an
 * imported template shifted to the range at its first unprivileged use.
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
  const host = spec.template === HOST_TEMPLATE;
  const isolation = host ? hostTemplateMounts({ tmpfs: HOST_TMPFS }) : undefined;
  // An image's layers are shared by every container of the image: there is no shifted copy of them
  // (validation refuses hostUsers: false with image; this guards other callers).
  if (userNamespace && Array.isArray(lower))
    throw new InvalidError('a user namespace (hostUsers: false) cannot be used with an image yet: use an imported template');
  let lowerDir = lower;
  if (opts.prepare) {
    if (userNamespace && typeof lower === 'string' && spec.template !== HOST_TEMPLATE) lowerDir = await shiftedTemplate(lower, range);
    if (userNamespace && typeof lowerDir === 'string') {
      const own = [ctx.paths.stateDir];
      await ensureTraversable(cp.dir, own); // the container dir itself: see preparePrivateArea
      await ensureTraversable(lowerDir, own);
      // With resources.disk the upper dir sits on the disk image's root (disk/), made 0700 root
      // like the container dir was at the image's creation: the range root must cross it too.
      await ensureTraversable(cp.upper, own);
    }
    await preparePrivateArea({ dir: cp.dir, upper: cp.upper, work: cp.work, rootfs: cp.rootfs }, userNamespace);
    // After the private area is owned by the ids in use: the markers are written for them.
    if (host) {
      const idBase = userNamespace ? userNamespace.uidMappings[0]!.hostID : 0;
      await applyHostView(await hostViewOf(ctx), { hostRoot: ctx.hostRoot, stateDir: ctx.paths.stateDir, containerDir: cp.dir, upper: cp.upper, idBase });
    }
  }
  return {
    lower: lowerDir,
    ...(isolation ? { isolationMounts: isolation } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(userNamespace ? { userNamespace } : {}),
  };
}
