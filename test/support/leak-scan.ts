/** Scanning what a user or another process can read (output, logs, the state dir) for bytes that must not be there. */
import { readdir, readFile, lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { mountsUnder } from '../../src/util/mounts.js';

/**
 * Every regular file under dir that contains one of the markers (symlinks are not followed). Mount
 * points are not entered: a running container's rootfs (the node's whole / for the host template)
 * holds files acetate never wrote, and reading it all took most of a minute; so is a disk image's
 * mount (the container's own files, not acetate's).
 */
export async function filesContaining(dir: string, markers: string[]): Promise<string[]> {
  const found: string[] = [];
  const root = await realpath(dir);
  const mounts = new Set((await mountsUnder(root)).filter((m) => m !== root));
  async function walk(d: string): Promise<void> {
    if (mounts.has(d)) return;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await lstat(p);
        if (st.size > 16 * 1024 * 1024) continue;
        const text = await readFile(p, 'latin1').catch(() => '');
        if (markers.some((m) => text.includes(m))) found.push(p);
      }
    }
  }
  await walk(root);
  return found;
}

/** Pieces of a secret worth searching for: its lines and its fields (of 6 characters or more). */
export function secretPieces(secret: string): string[] {
  const pieces = new Set<string>();
  for (const line of secret.split('\n')) {
    if (line.length >= 6) pieces.add(line);
    for (const f of line.split(':')) if (f.length >= 6 && !/^\d+$/.test(f)) pieces.add(f);
  }
  return [...pieces];
}
