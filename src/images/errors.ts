/** Errors of the image store and of pulls, with the reasons Kubernetes shows for them. */

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
