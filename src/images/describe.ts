/** How commands show a container's base: its template, or its image and resolved digest. Pure. */
import type { NormalizedSpec } from '../api/types.js';
import { shortDigest } from '../api/image-reference.js';

/** `host`, or `docker.io/library/busybox:1.36@sha256:0123456789ab` for `get -o wide`. */
export function templateColumn(spec: Pick<NormalizedSpec, 'template' | 'image'>): string {
  if (!spec.image) return spec.template;
  return spec.image.digest ? `${spec.image.ref}@${shortDigest(spec.image.digest)}` : spec.image.ref;
}
