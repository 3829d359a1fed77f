/** Scanning what a user or another process can read (output, logs, the state dir) for bytes that must not be there. */
import { readdir, readFile, lstat } from 'node:fs/promises';
import path from 'node:path';

/** Every regular file under dir that contains one of the markers (symlinks are not followed). */
export async function filesContaining(dir: string, markers: string[]): Promise<string[]> {
  const found: string[] = [];
  async function walk(d: string): Promise<void> {
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
  await walk(dir);
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
