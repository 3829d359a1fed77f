/**
 * How a runc container is marked as acetate's: annotations in its OCI config naming the owner and
 * the container. runc's root may hold containers that others created (or an older acetate with
 * another state dir, under the same id); acetate touches only those whose marks match.
 */

/** The owner marks of container namespace/name, written into its config.json (see oci-config.ts). */
export function ownerAnnotations(namespace: string, name: string): Record<string, string> {
  return { 'acetate.dev/owner': 'acetate', 'acetate.dev/namespace': namespace, 'acetate.dev/name': name };
}

/** Annotations carry these marks of namespace/name (runc state's `annotations`). */
export function hasOwnerMarks(annotations: Readonly<Record<string, string>> | undefined, namespace: string, name: string): boolean {
  return Object.entries(ownerAnnotations(namespace, name)).every(([k, v]) => annotations?.[k] === v);
}
