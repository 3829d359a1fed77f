/**
 * Reads a file of an image as its container would see it: the path is resolved inside the merged
 * rootfs of the image's unpacked layers (overlayfs lower dirs, topmost first), with symlinks
 * followed as the container would follow them — an absolute target starts again at the image's
 * root, `..` stops at it — and never onto the node. This is what runc and containerd do with
 * securejoin for paths inside a rootfs; an image whose `/etc` is a symlink to `/etc` must not make
 * acetate read the node's /etc/passwd.
 *
 * Written here rather than taken from a library: the path must be resolved across a stack of
 * overlay layers (whiteouts and opaque dirs), not inside one directory, and no maintained npm
 * package does that (Node has no openat2 RESOLVE_IN_ROOT either).
 *
 * Overlay's rules, as unpack.ts writes the layers: an entry is the topmost layer's that has it; a
 * 0:0 character device is a whiteout (the name is gone below it); a directory merges with the
 * directories of the same path below it, down to the first opaque one (`trusted.overlay.opaque=y`)
 * or the first layer where that path is not a directory.
 */
import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../util/exec.js';

/** As Linux's MAXSYMLINKS: a loop of links ends here. */
const MAX_LINKS = 40;

export class ImagePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImagePathError';
  }
}

type Found = { kind: 'dir'; layers: string[] } | { kind: 'link' | 'file' | 'other'; at: string } | undefined;

async function isOpaque(dir: string): Promise<boolean> {
  // Node has no getxattr; getfattr (attr, as setfattr for unpack) is asked only where it matters.
  const r = await exec('getfattr', ['--absolute-names', '--only-values', '-h', '-n', 'trusted.overlay.opaque', dir]).catch(() => undefined);
  return r?.stdout === 'y';
}

/** The entry `name` of the merged directory whose layer dirs (topmost first) are `dirs`. */
async function lookupEntry(dirs: string[], name: string): Promise<Found> {
  const merged: string[] = [];
  for (const [i, d] of dirs.entries()) {
    const at = path.join(d, name);
    const st = await lstat(at).catch(() => undefined);
    if (!st) continue;
    if (st.isCharacterDevice() && st.rdev === 0) break; // a whiteout: gone from here down
    if (!st.isDirectory()) {
      if (merged.length) break; // a non-directory below a directory is hidden by it
      return { kind: st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : 'other', at };
    }
    merged.push(at);
    if (i < dirs.length - 1 && (await isOpaque(at))) break;
  }
  return merged.length ? { kind: 'dir', layers: merged } : undefined;
}

/**
 * The layer path holding the regular file `rel` of the merged image, or undefined when the image
 * has no such file. Throws an ImagePathError when the path cannot be resolved inside the image (a
 * symlink loop, a component that is not a directory).
 */
export async function resolveImageFile(lowerDirs: string[], rel: string): Promise<string | undefined> {
  const root = { kind: 'dir' as const, layers: lowerDirs };
  const todo = rel.split('/').filter((c) => c && c !== '.');
  let stack: (typeof root)[] = [root]; // the directories walked so far, root first
  let links = 0;
  while (todo.length) {
    const name = todo.shift()!;
    if (name === '..') {
      if (stack.length > 1) stack = stack.slice(0, -1);
      continue;
    }
    const here = stack[stack.length - 1]!;
    const found = await lookupEntry(here.layers, name);
    if (!found) return undefined;
    if (found.kind === 'dir') {
      stack = [...stack, found];
      continue;
    }
    if (found.kind === 'link') {
      if (++links > MAX_LINKS) throw new ImagePathError(`/${rel}: too many levels of symbolic links in the image`);
      const target = await readlink(found.at);
      if (target.startsWith('/')) stack = [root];
      todo.unshift(...target.split('/').filter((c) => c && c !== '.'));
      continue;
    }
    if (todo.length) return undefined; // a file where a directory should be: ENOTDIR, as the container would see it
    return found.kind === 'file' ? found.at : undefined;
  }
  return undefined; // the path names a directory
}

/**
 * The text of a small regular file of the merged image (at most maxBytes), or undefined when the
 * image has none there. Opened without following a last symlink: the layers are acetate's own,
 * but nothing of the node may be read through them.
 */
export async function readImageFile(lowerDirs: string[], rel: string, maxBytes = 1024 * 1024): Promise<string | undefined> {
  const at = await resolveImageFile(lowerDirs, rel);
  if (!at) return undefined;
  const fh = await open(at, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    if (st.size > maxBytes) throw new ImagePathError(`/${rel} in the image is ${st.size} bytes, more than the ${maxBytes} read`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}
