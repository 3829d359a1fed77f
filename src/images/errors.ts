/** Errors of the image store and of pulls, with the reasons Kubernetes shows for them. */
import { TransientError } from '../contracts/errors.js';
import { formatDuration } from '../util/duration.js';

/**
 * A pull failed: registry unreachable, unknown tag, credentials refused, a corrupt blob. `reason`
 * is what the container's Ready condition says: ErrImagePull (this attempt failed; retried with
 * back-off, shown as ImagePullBackOff while waiting), ErrImageNeverPull (policy Never and the
 * image is not on the node).
 */
export class ImagePullError extends Error {
  constructor(
    message: string,
    readonly reason: 'ErrImagePull' | 'ErrImageNeverPull' = 'ErrImagePull',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImagePullError';
  }
}

/** The store refuses (image in use, not found, a corrupt layer) or its files cannot be read. */
export class ImageStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageStoreError';
  }
}

/**
 * A registry did not answer in time (`--registry-timeout`): the skopeo child was killed. Transient
 * (the queue backs off and tries again), and wrapped in an ImagePullError so the container waits
 * in ErrImagePull / ImagePullBackOff naming the registry and the limit.
 */
export class RegistryTimeoutError extends TransientError {
  constructor(
    readonly registry: string,
    readonly limitMs: number,
    what: string,
  ) {
    super(
      `registry ${registry} ${what} within ${limitMs % 1000 ? `${limitMs}ms` : formatDuration(limitMs)} (the registry time limit, --registry-timeout or ACETATE_REGISTRY_TIMEOUT); the request was ended`,
    );
  }
}
