/** status.image / status.imageID of a container made from an image, as Kubernetes reports them. Pure. */
import { parseReference, repositoryOf } from '../api/image-reference.js';

export function imageStatus(image: { ref: string; digest?: string } | undefined): { image?: string; imageID?: string } {
  if (!image) return {};
  if (!image.digest) return { image: image.ref };
  let repo = image.ref;
  try {
    repo = repositoryOf(parseReference(image.ref));
  } catch {
    /* recorded refs were validated; keep it as it is */
  }
  return { image: image.ref, imageID: `${repo}@${image.digest}` };
}
