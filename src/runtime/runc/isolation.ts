/**
 * The isolation parts of a container's OCI config, gathered in one place so that the runtime has
 * one call: what the host template hides (../host-isolation.ts), the seccomp filter (seccomp.ts)
 * and the user namespace (userns.ts), with the private area and template prepared for the ids the
 * container runs with.
 */
import type { AppliedRecord } from '../runtime.js';
import { InvalidError } from '../../contracts/errors.js';
import { HOST_TEMPLATE } from './templates.js';
import { hostMaskRules, isolationMounts, resolveHostMasks, type HostIsolationOptions } from './host-isolation.js';
import { resolveCapabilities, type OciConfigInput } from './oci-config.js';
import type { ContainerPaths, InstancePaths } from './paths.js';
import { seccompFor } from './seccomp.js';
import { DEFAULT_USERNS_RANGE, ensureTraversable, preparePrivateArea, shiftedTemplate, userNamespaceFor, type IdRange } from './userns.js';

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
  paths: InstancePaths;
  settings: IsolationSettings;
  hostRoot: string;
  boundingCapabilities: readonly string[];
}

export function hostIsolationOptions(ctx: Pick<IsolationContext, 'paths' | 'settings'>): HostIsolationOptions {
  return { stateDir: ctx.paths.stateDir, runDir: ctx.paths.runDir, hide: ctx.settings.hostHide, show: ctx.settings.hostShow };
}

/**
 * The OciConfigInput fields of isolation, for a template whose lower dir is `lower`. With
 * `prepare` (a start, not a check), the private area is re-owned for the ids in use and an
 * imported template shifted to the range at its first unprivileged use.
 */
export async function isolationInputs(
  record: Pick<AppliedRecord, 'spec'>,
  cp: ContainerPaths,
  lower: string | string[],
  ctx: IsolationContext,
  opts: { prepare: boolean },
): Promise<Pick<OciConfigInput, 'isolationMounts' | 'seccomp' | 'userNamespace'> & { lower: string | string[] }> {
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
  }
  return {
    lower: lowerDir,
    ...(isolation ? { isolationMounts: isolation } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(userNamespace ? { userNamespace } : {}),
  };
}
