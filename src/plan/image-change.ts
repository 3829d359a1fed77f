/**
 * How the plan words a change of a container's image. Pure.
 *
 * A new digest (or tag) of the same repository keeps the private area, as an OS template update
 * does in Virtuozzo: the container's own changes stay on top of the updated base, and the plan
 * says so. Another repository, or a change between a template and an image, is another OS: the
 * private area is deleted, as for a change of template.
 */
import type { NormalizedSpec } from '../api/types.js';
import { parseReference, repositoryOf } from '../api/image-reference.js';

function repo(ref: string): string {
  try {
    return repositoryOf(parseReference(ref));
  } catch {
    return ref;
  }
}

function base(s: NormalizedSpec): string {
  return s.image ? `image ${s.image.ref}` : `template ${s.template}`;
}

/** undefined when neither spec has an image (the template wording applies). */
export function describeImageChange(had: NormalizedSpec, want: NormalizedSpec, fields: string[]): { discard: boolean; reason: string } | undefined {
  if (!had.image && !want.image) return undefined;
  const others = fields.filter((f) => f !== 'image' && f !== 'template');
  const and = others.length ? ` (and ${others.join(', ')})` : '';
  if (!had.image || !want.image || repo(had.image.ref) !== repo(want.image.ref)) {
    return { discard: true, reason: `${base(had)} → ${base(want)}${and}: another base OS, the private area will be deleted` };
  }
  if (!fields.includes('image')) return { discard: false, reason: `${others.join(', ')} changed: cannot change in place (private area kept)` };
  const refChange = had.image.ref !== want.image.ref ? `image ${had.image.ref} → ${want.image.ref}, ` : `image ${want.image.ref}: `;
  const digest = had.image.digest !== want.image.digest ? `image digest ${had.image.digest ?? '(none)'} → ${want.image.digest ?? '(none)'}` : 'same digest';
  return {
    discard: false,
    reason: `${refChange}${digest}${and}: the private area is kept over the new image (an update of the same image, like an OS template update)`,
  };
}
