/**
 * The rules of `spec.image` the CRD schema says in CEL (x-kubernetes-validations, which the API
 * server runs but ajv does not) and what it cannot say at all (the reference's grammar).
 */
import { ImageReferenceError, parseReference } from './image-reference.js';
import { qualifyImage } from './image-short-names.js';

export function imageSpecIssues(spec: Record<string, unknown>): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = [];
  const hasTemplate = spec.template !== undefined;
  const hasImage = spec.image !== undefined;
  if (hasTemplate && hasImage) out.push({ path: ['spec', 'image'], message: 'give exactly one of template and image, not both' });
  if (!hasTemplate && !hasImage) out.push({ path: ['spec', 'template'], message: 'required field is missing (or give an image)' });
  if (!hasImage && spec.command === undefined) out.push({ path: ['spec', 'command'], message: 'required field is missing' });
  if (!hasImage && spec.imagePullPolicy !== undefined) out.push({ path: ['spec', 'imagePullPolicy'], message: 'applies to an image only' });
  if (typeof spec.image === 'string' && spec.image.length > 0) {
    try {
      parseReference(spec.image);
    } catch (err) {
      if (!(err instanceof ImageReferenceError)) throw err;
      out.push({ path: ['spec', 'image'], message: `'${spec.image.slice(0, 80)}' is not a valid image reference: ${err.message}` });
      return out;
    }
    try {
      qualifyImage(spec.image); // a broken [aliases] table is this manifest's problem, not the whole file's
    } catch (err) {
      if (!(err instanceof ImageReferenceError)) throw err;
      out.push({ path: ['spec', 'image'], message: `cannot resolve the short name '${spec.image.slice(0, 80)}' through registries.conf: ${err.message}` });
    }
  }
  return out;
}
