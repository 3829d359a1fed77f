/** One entry of an OCI config's `mounts`: the shape the walls produce (masks, hidden paths) and runc/oci-types.ts re-exports. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}
