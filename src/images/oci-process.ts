/** The OCI process fields of a container made from an image (see process.ts for the rules). Pure. */
import type { NormalizedSpec } from '../api/types.js';
import { effectiveProcess, resolveUser, type ImageProcessConfig } from './process.js';

/** What the runtime knows of a container's image when it writes config.json. */
export interface ImageProcessInput {
  config: ImageProcessConfig;
  passwd?: string;
  group?: string;
}

export interface ImageProcess {
  args: string[];
  env: { name: string; value: string }[];
  cwd: string;
  user: { uid: number; gid: number };
}

export function imageProcess(spec: NormalizedSpec, image: ImageProcessInput): ImageProcess {
  const p = effectiveProcess(spec, image.config);
  return { ...p, user: resolveUser(image.config.User, { passwd: image.passwd, group: image.group }) };
}

/**
 * overlayfs takes its options in one page (4096 bytes on x86-64): every lower dir's path counts.
 * Throws a clear error instead of the kernel's bare EINVAL when an image has too many layers for
 * where its store is.
 */
export const MOUNT_DATA_MAX = 4096;

/**
 * How many layers an image stored under `layersDir` may have and still fit that page, leaving
 * `reserve` bytes for the container's upperdir, workdir and flags: checked from the manifest before
 * a pull downloads anything, where the exact check above comes only at create.
 */
export function layersThatFit(layersDir: string, reserve = 512): number {
  const perLayer = layersDir.length + 1 + 64 + 1; // "<layersDir>/<64 hex>:"
  return Math.max(0, Math.floor((MOUNT_DATA_MAX - 'lowerdir='.length - reserve) / perLayer));
}
