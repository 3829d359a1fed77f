/**
 * Pins the image of desired containers to a digest before planning (the facts of the pure plan).
 * A container whose image cannot be resolved is never destroyed or replaced because of it:
 * - it exists with the same image: it is planned with the digest it runs (other changes, such as
 *   a resize, still happen) and the failure is reported;
 * - otherwise it is held: the plan leaves it alone, saying why.
 */
import type { DesiredContainer } from '../api/types.js';
import type { ActualContainer } from '../runtime/runtime.js';
import { ImagePullError } from './errors.js';
import type { ImageResolver } from './resolver.js';

export interface PinResult {
  /** The desired container with `spec.image.digest` set (the input itself when it has no image). */
  desired?: DesiredContainer;
  /** The resolution failed: what the registry said. */
  error?: ImagePullError;
  /** The container is left alone because of the error (nothing to plan for it). */
  held?: string;
}

export async function pinImage(d: DesiredContainer, actual: ActualContainer | undefined, resolver: ImageResolver): Promise<PinResult> {
  const image = d.spec.image;
  if (!image) return { desired: d };
  const had = actual?.applied.spec.image;
  const applied = had && had.ref === image.ref ? had.digest : undefined;
  try {
    const digest = await resolver.resolve(image.ref, d.spec.imagePullPolicy ?? 'IfNotPresent', applied);
    return { desired: withDigest(d, digest) };
  } catch (err) {
    const error = err instanceof ImagePullError ? err : new ImagePullError(err instanceof Error ? err.message : String(err), 'ErrImagePull', { cause: err });
    if (applied) return { desired: withDigest(d, applied), error };
    return { error, held: `${error.reason}: container ${d.name} waits: ${error.message}` };
  }
}

export function withDigest(d: DesiredContainer, digest: string): DesiredContainer {
  return { ...d, spec: { ...d.spec, image: { ref: d.spec.image!.ref, digest } } };
}
