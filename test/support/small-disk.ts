/**
 * A container's disk the test can fill (as a container fills its `resources.disk` image): a tmpfs
 * of a few blocks and inodes mounted on `<tmp dir>/upper`, unmounted and removed after the test.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';

export interface SmallDisk {
  /** The temp dir around it (other files of the test go here). */
  root: string;
  /** The mounted tmpfs. */
  upper: string;
}

/** Mounts a fresh small disk before each test of the suite and removes it after; `current()` gives it. */
export function smallDiskPerTest(prefix: string, opts: { size: string; inodes: number }): () => SmallDisk {
  let disk: SmallDisk | undefined;
  beforeEach(async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), prefix));
    const upper = path.join(root, 'upper');
    mkdirSync(upper);
    disk = { root, upper };
    await exec('mount', ['-t', 'tmpfs', '-o', `size=${opts.size},nr_inodes=${opts.inodes}`, 'acetate-test', upper]);
  });
  afterEach(async () => {
    if (!disk) return;
    await exec('umount', [disk.upper]).catch(() => undefined);
    rmSync(disk.root, { recursive: true, force: true });
    disk = undefined;
  });
  return () => disk!;
}

/** Takes every inode of the disk (and, with `blocks`, every block first), as a container can. */
export async function fillDisk(upper: string, blocks = false): Promise<void> {
  const dd = blocks ? `dd if=/dev/zero of=${upper}/fill bs=4k 2>/dev/null; ` : '';
  await exec('sh', ['-c', `${dd}i=0; while touch ${upper}/f$i 2>/dev/null; do i=$((i+1)); done; true`]);
}
