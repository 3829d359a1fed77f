/**
 * The loop's side of images: pins a desired container's image before its plan (see
 * images/pin.ts) and words pull failures as Kubernetes does: `ErrImagePull` for the attempt that
 * failed, `ImagePullBackOff` while the back-off waits to try again, with the registry's message.
 * It decides no delay: the failure itself goes to the reconcile's Requeue (requeueFor).
 */
import type { DesiredContainer } from '../api/types.js';
import { ImagePullError } from '../images/errors.js';
import { pinImage, withDigest } from '../images/pin.js';
import type { PendingResolutions } from './image-resolving.js';
import type { ImageResolver } from '../images/resolver.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { ReconcileError } from './status.js';
import type { Waiting } from '../contracts/status-record.js';
import { causeOf, InvalidError } from '../contracts/errors.js';

export interface PinnedForReconcile {
  desired?: DesiredContainer;
  heldKeys?: Map<string, string>;
  error?: ReconcileError;
  /** The failure itself, for the Requeue (requeueFor: by its kind). */
  failure?: unknown;
  waiting?: Waiting;
}

/** `failures`: how many reconciles of the key failed in a row before this one. */
export function pullWaiting(err: unknown, failures: number): Waiting | undefined {
  const e = causeOf(err, ImagePullError);
  if (!e) return undefined;
  if (e.reason === 'ErrImageNeverPull') return { reason: e.reason, message: e.message };
  return { reason: failures > 0 ? 'ImagePullBackOff' : 'ErrImagePull', message: e.message };
}

export async function pinForReconcile(
  key: string,
  desired: DesiredContainer | undefined,
  actual: ActualContainer | undefined,
  resolver: ImageResolver | undefined,
  failures: number,
  pending?: PendingResolutions,
): Promise<PinnedForReconcile> {
  if (!desired?.spec.image) return { desired };
  if (!resolver) {
    const failure = new InvalidError('this runtime cannot run images');
    return { heldKeys: new Map([[key, failure.message]]), error: { message: failure.message, retry: 'terminal' }, failure };
  }
  const r = pending ? await pending.pin(key, desired, actual, resolver) : await pinImage(desired, actual, resolver);
  if (r === 'resolving') return resolving(key, desired, actual, resolver);
  const out: PinnedForReconcile = {};
  if (r.desired) out.desired = r.desired;
  if (r.held) out.heldKeys = new Map([[key, r.held]]);
  if (r.error) {
    out.error = { message: r.error.message, action: 'pull', retry: 'backoff' };
    out.failure = r.error;
    const w = pullWaiting(r.error, failures);
    // A container that runs keeps running: its Ready condition stays as it is.
    if (w && !(actual?.process.state === 'running')) out.waiting = w;
  }
  return out;
}

/**
 * The registry has not answered yet: a container that exists with this image is planned with the
 * digest it runs (other changes still happen); a new one waits in ImageResolving, left alone.
 */
function resolving(key: string, desired: DesiredContainer, actual: ActualContainer | undefined, resolver: ImageResolver): PinnedForReconcile {
  const image = desired.spec.image!;
  const had = actual?.applied.spec.image;
  const waiting: Waiting = {
    reason: 'ImageResolving',
    message: `asking the registry which digest ${image.ref} names (limit ${Math.round(resolver.store.skopeo.registryTimeoutMs / 1000)}s per request); other containers go on meanwhile`,
  };
  if (had?.digest && had.ref === image.ref) return { desired: withDigest(desired, had.digest), ...(actual?.process.state === 'running' ? {} : { waiting }) };
  return { heldKeys: new Map([[key, `${waiting.reason}: ${waiting.message}`]]), waiting };
}
