/**
 * Mounts as the node sees them. A container's root overlay is mounted by runc inside the
 * container's own mount namespace (see runtime/runc/oci-config.ts), so normally nothing of a
 * container is mounted on the node; these helpers find and remove what is (a rootfs mounted on the
 * node by an acetate before 0.2, a bind mount someone left), before a container's directory is
 * deleted, and the disk and network drivers' own mounts (images, namespaces).
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { exec } from './exec.js';
import { readSmallFile } from './small-file.js';

export interface MountInfoEntry {
  mountId: number;
  parentId: number;
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 6) continue;
    out.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      root: unescapeMountField(fields[3] ?? ''),
      mountPoint: unescapeMountField(fields[4] ?? ''),
      fsType: fields[sep + 1] ?? '',
      source: unescapeMountField(fields[sep + 2] ?? ''),
    });
  }
  return out;
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readSmallFile('/proc/self/mountinfo'));
}

async function canonical(p: string): Promise<string> {
  const abs = path.resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    // Resolve the longest existing ancestor, so a missing leaf still compares right.
    const parent = path.dirname(abs);
    if (parent === abs) return abs;
    return path.join(await canonical(parent), path.basename(abs));
  }
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const base = await canonical(dir);
  const prefix = base.endsWith('/') ? base : `${base}/`;
  const points = (await readMountInfo()).map((m) => m.mountPoint).filter((p) => p === base || p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export async function isMounted(target: string): Promise<boolean> {
  const t = await canonical(target);
  return (await readMountInfo()).some((m) => m.mountPoint === t);
}

export class MountError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MountError';
  }
}

/**
 * Unmount everything mounted on target (mounts may be stacked). Idempotent. A busy mount is retried
 * a few times and finally detached lazily (MNT_DETACH) so that it cannot block removal.
 */
export async function unmountAll(target: string, opts: { sleep?: (ms: number) => Promise<void> } = {}): Promise<void> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    if (!(await isMounted(target))) return;
    if (attempt >= 50) throw new MountError(`cannot unmount ${target}`, { cause: lastError });
    const lazy = attempt >= 5;
    try {
      await exec('umount', lazy ? ['-l', target] : [target], { timeoutMs: 30_000 });
    } catch (err) {
      lastError = err;
      await sleep(100);
    }
  }
}
