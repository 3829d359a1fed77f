/** What the image store keeps of an image, and what a container takes from it. */
import type { ImageProcessConfig } from './process.js';

export interface ImageLayer {
  /** Compressed blob digest. */
  digest: string;
  /** Uncompressed digest: names the unpacked layer dir. */
  diffID: string;
  mediaType: string;
  size: number;
}

export interface ImageRecord {
  /** The image's id: the digest of its linux/amd64 manifest at the registry (or in the archive). */
  id: string;
  /** Names it was pulled or imported as (canonical). */
  names: string[];
  /** `repo@id` for each repository it came from. */
  repoDigests: string[];
  /** Digest of the manifest as stored locally (skopeo may convert a Docker manifest to OCI). */
  manifestDigest: string;
  configDigest: string;
  config: ImageProcessConfig;
  /** Bottom layer first, as in the manifest. */
  layers: ImageLayer[];
  pulledAt: string;
  /** Where it came from: `docker://…`, `docker-archive:…`, `oci-archive:…`. */
  source: string;
}

/** What a container needs of an image: its lower dirs (topmost first) and its config. */
export interface ImageRootfs {
  id: string;
  lowerDirs: string[];
  config: ImageProcessConfig;
  /** Text of the image's /etc/passwd and /etc/group (topmost layer that has them), for User names. */
  passwd?: string;
  group?: string;
}
