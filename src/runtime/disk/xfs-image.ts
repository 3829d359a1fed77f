/**
 * The steps of an XFS filesystem in a sparse image file on a loop device, each one standard tool
 * (truncate, mkfs.xfs, mount -o loop, losetup, xfs_growfs, cp) run through the exec helper. No
 * state is kept in memory: everything is read back from the node (the image's size, /proc's
 * mounts, `losetup`), so a new acetate adopts what an earlier one attached.
 */
import path from 'node:path';
import { chmod, chown, mkdir, readFile, rename, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { exec, ExecError } from '../../util/exec.js';
import { formatMemory } from '../../api/quantity.js';
import { readMountInfo, unmountAll } from '../../util/mounts.js';
import { DiskLimitError } from './driver.js';
import { reservedBytes } from './room-reserve.js';

/** xfsprogs ≥ 5.19 refuses filesystems below 300 MB unless run by fstests (see makeXfsImage). */
const XFSPROGS_SUPPORTED_MIN = 300 * 10 ** 6;
const TOOL_TIMEOUT_MS = 120_000;

/**
 * How disk images take space on the state dir's filesystem (ACETATE_DISK_PROVISIONING):
 * - `full` (the default): every image is allocated whole when made or grown (fallocate(2), no
 *   zeroing, so fast). Disks can then never promise together more than the node has: a container
 *   that fills its disk gets ENOSPC inside it, and no write it was told succeeded is lost for want
 *   of space on the node. Overcommit is refused by the filesystem itself at create and grow.
 * - `thin`: sparse images, mounted with `discard` so space freed inside returns to the node.
 *   Several disks may promise more than is free (as LVM thin pools and ploop allow); when the
 *   state dir fills, the kernel's writeback to an image fails and writes a container already saw
 *   succeed are LOST (loop: writeback error). Only for nodes whose admin watches free space.
 */
export type DiskProvisioning = 'full' | 'thin';

export function diskProvisioning(env: NodeJS.ProcessEnv = process.env): DiskProvisioning {
  const v = env.ACETATE_DISK_PROVISIONING;
  if (v === undefined || v === '' || v === 'full') return 'full';
  if (v === 'thin') return 'thin';
  throw new DiskLimitError(`ACETATE_DISK_PROVISIONING=${JSON.stringify(v.slice(0, 40))}: give full or thin`);
}

/** Allocates an image's blocks up to `bytes` (full provisioning); ENOSPC is a clear refusal. */
export async function allocate(file: string, bytes: number): Promise<void> {
  if (diskProvisioning() !== 'full') return;
  try {
    await exec('fallocate', ['-l', String(bytes), file], { timeoutMs: TOOL_TIMEOUT_MS });
  } catch (err) {
    const msg = err instanceof ExecError ? (err.stderr.trim().split('\n')[0] ?? err.message) : String(err);
    throw new DiskLimitError(`cannot allocate ${formatMemory(bytes)} for the disk on the state dir's filesystem: ${msg}`, { cause: err });
  }
}

/** Creates an image file of `bytes` (allocated whole, or sparse when thin) and formats it XFS. The file must not exist or be attached. */
export async function makeXfsImage(file: string, bytes: number): Promise<void> {
  await writeFile(file, '', { mode: 0o600 });
  await truncate(file, bytes); // sparse until allocated: mkfs writes only the log and AG headers
  await allocate(file, bytes);
  // xfsprogs ≥ 5.19 refuses filesystems smaller than 300 MB ("not supported": the log is small)
  // unless it is run by fstests, which it recognizes by these three variables. The kernel mounts
  // and grows such filesystems fine (the test suite checks 16–128 MiB ones); below 300 MB acetate
  // sets them, so that a small container disk is possible. -K: no discard pass over a new sparse file.
  const env = bytes < XFSPROGS_SUPPORTED_MIN ? { ...process.env, TEST_DIR: '/nonexistent', TEST_DEV: '/nonexistent', QA_CHECK_FS: '0' } : process.env;
  try {
    await exec('mkfs.xfs', ['-q', '-f', '-K', file], { env, timeoutMs: TOOL_TIMEOUT_MS });
  } catch (err) {
    const msg = err instanceof ExecError ? (err.stderr.split('\n')[0] ?? err.message) : String(err);
    throw new DiskLimitError(`cannot make an XFS filesystem of ${formatMemory(bytes)}: ${msg}`, { cause: err });
  }
}

/**
 * Attaches the image on a loop device and mounts it on `mountPoint`, private: nothing mounted under
 * it propagates to other mount namespaces, and unmounting it on the node is not propagated either.
 * `-o loop` makes mount(8) set up the loop device with autoclear: the device detaches itself when
 * the filesystem is unmounted for the last time, so a mount that is gone never leaves a device.
 */
export async function mountImage(file: string, mountPoint: string): Promise<void> {
  await mkdir(mountPoint, { recursive: true, mode: 0o700 });
  if (await isMountPoint(mountPoint, path.dirname(mountPoint))) return;
  // Thin images return what is freed inside to the node (the loop device punches holes); whole ones must not.
  const opts = diskProvisioning() === 'thin' ? 'loop,discard' : 'loop';
  await exec('mount', ['--make-private', '-t', 'xfs', '-o', opts, file, mountPoint], { timeoutMs: TOOL_TIMEOUT_MS });
}

export async function unmountImage(mountPoint: string): Promise<void> {
  await unmountAll(mountPoint);
}

/** The owner and mode of `like` on the root of a new filesystem (kept generic: a user-namespaced private area is chowned). */
export async function copyOwnership(like: string, root: string): Promise<void> {
  const st = await stat(like);
  await chown(root, st.uid, st.gid);
  await chmod(root, st.mode & 0o7777);
}

/** Loop devices attached to `file` (`losetup -j`). */
export async function loopDevicesOf(file: string): Promise<string[]> {
  const { stdout } = await exec('losetup', ['-j', file], { timeoutMs: TOOL_TIMEOUT_MS });
  return stdout
    .split('\n')
    .map((l) => l.split(':')[0]!.trim())
    .filter((d) => d.startsWith('/dev/'));
}

/** Every loop device with its backing file (`losetup -l -J`); a deleted file ends in " (deleted)". */
export async function listLoopDevices(): Promise<{ name: string; backFile: string }[]> {
  const { stdout } = await exec('losetup', ['-l', '-J', '-O', 'NAME,BACK-FILE'], { timeoutMs: TOOL_TIMEOUT_MS });
  if (!stdout.trim()) return [];
  const parsed = JSON.parse(stdout) as { loopdevices?: { name: string; 'back-file'?: string | null }[] };
  return (parsed.loopdevices ?? []).map((d) => ({ name: d.name, backFile: d['back-file'] ?? '' }));
}

/** `losetup -d`: detaches a device, or marks a busy one autoclear (it goes with its last user). */
export async function detachLoop(dev: string): Promise<void> {
  await exec('losetup', ['-d', dev], { timeoutMs: TOOL_TIMEOUT_MS }).catch((err: unknown) => {
    if (!(err instanceof ExecError) || !/No such device|not a block device|No such file/i.test(err.stderr)) throw err;
  });
}

/**
 * Grows a mounted image live: extend the file (sparse), have the loop device pick up the new size
 * (`losetup -c`), grow the filesystem to the device (`xfs_growfs`). The container keeps running.
 */
export async function growImage(file: string, mountPoint: string, bytes: number): Promise<void> {
  // The device is the mount's source (no `losetup -j` process); losetup's answer otherwise.
  const src = (await readMountInfo()).find((m) => m.mountPoint === mountPoint && m.fsType === 'xfs')?.source;
  const devs = src?.startsWith('/dev/loop') ? [src] : await loopDevicesOf(file);
  if (devs.length === 0) throw new Error(`${file} is not attached to a loop device`);
  await allocate(file, bytes); // first: a node without the room refuses before the file or filesystem changes
  await truncate(file, bytes);
  for (const d of devs) await exec('losetup', ['-c', d], { timeoutMs: TOOL_TIMEOUT_MS });
  await recordGrowth(mountPoint, async () => {
    await exec('xfs_growfs', ['-d', mountPoint], { timeoutMs: TOOL_TIMEOUT_MS });
  });
}

/** The image's size, or undefined when it does not exist. */
export async function imageSize(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Whether something is mounted on `mountPoint` (its device differs from its parent's): two
 * stat calls, cheap enough for every container on every pass of the loop.
 */
export async function isMountPoint(mountPoint: string, parent: string): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([stat(mountPoint), stat(parent)]);
    return a.dev !== b.dev;
  } catch {
    return false;
  }
}

/**
 * Copies a directory tree with everything overlayfs keeps in it: owners, modes, timestamps, hard
 * links, xattrs (trusted.overlay.* opaque dirs), device nodes (whiteouts), sparse files.
 * Returns 'nospace' when the target filled up (nothing is removed from the source).
 */
export async function copyTree(from: string, to: string): Promise<'ok' | 'nospace'> {
  try {
    await exec('cp', ['-a', '--sparse=always', '--no-target-directory', from, to], { timeoutMs: 24 * 3600_000 });
    return 'ok';
  } catch (err) {
    if (err instanceof ExecError && /No space left on device|Disk quota exceeded/i.test(err.stderr)) return 'nospace';
    throw err;
  }
}

/**
 * The size of a mounted filesystem, which is what is in force: the image file's size is not (a grow
 * killed between `truncate` and `xfs_growfs` leaves the file larger than the filesystem). statfs's
 * f_blocks is XFS's data blocks minus its internal log, whose size is fixed at mkfs and written next
 * to the private area, at the filesystem's root, when the image is made (META).
 *
 * META also holds `metaBytes`: what XFS itself uses of f_blocks (reserved pool, per-AG metadata
 * reservations, AG headers), measured on the empty filesystem right after mkfs and increased by what
 * each xfs_growfs adds (statfs before and after it). The files' use is statfs's use minus it: a
 * shrink is decided on what the files take, not on metadata that grows with the filesystem (an
 * empty 10Gi disk uses 103 MiB; one grown from 16Mi to 40Gi, 440 MiB, as it has 2560 AGs).
 */
const META = '.acetate-disk.json';

interface FsMeta {
  logBytes?: number;
  metaBytes?: number;
}

async function readMeta(mountPoint: string): Promise<FsMeta | undefined> {
  return readFile(path.join(mountPoint, META), 'utf8').then(
    (t) => JSON.parse(t) as FsMeta,
    () => undefined,
  );
}

async function writeMeta(mountPoint: string, meta: FsMeta): Promise<void> {
  // Written aside then renamed: a kill in between leaves the old record, never half of one.
  const tmp = path.join(mountPoint, `${META}.tmp`);
  await writeFile(tmp, `${JSON.stringify(meta)}\n`, { mode: 0o600 });
  await rename(tmp, path.join(mountPoint, META));
}

const usedOf = (s: { blocks: number; bfree: number; bsize: number }): number => (s.blocks - s.bfree) * s.bsize;

/** Right after mkfs and the first mount (file and filesystem the same size, nothing written): note the log's size and XFS's own use. */
export async function writeFsMeta(mountPoint: string, fileBytes: number): Promise<void> {
  const s = await statfs(mountPoint);
  await writeMeta(mountPoint, { logBytes: fileBytes - s.blocks * s.bsize, metaBytes: usedOf(s) });
}

/**
 * Runs `grow` (xfs_growfs) and adds the metadata it made (new AGs' headers and reservations, a larger
 * reserved pool) to META. Files written by the container in the same few milliseconds count as
 * metadata then: the shrink check is an estimate either way, and the copy has the last word.
 */
export async function recordGrowth(mountPoint: string, grow: () => Promise<void>): Promise<void> {
  const before = usedOf(await statfs(mountPoint));
  await grow();
  const after = usedOf(await statfs(mountPoint));
  const meta = await readMeta(mountPoint);
  if (typeof meta?.metaBytes === 'number') await writeMeta(mountPoint, { ...meta, metaBytes: meta.metaBytes + Math.max(0, after - before) });
}

/**
 * A disk made by an acetate before metaBytes was recorded: measured once, at a start (the process
 * is not running, nothing writes), as statfs's use minus what `du` finds in the files and dirs
 * (inode chunks then count as XFS's: a few KiB per 64 files).
 */
export async function backfillFsMeta(mountPoint: string): Promise<void> {
  const meta = await readMeta(mountPoint);
  if (typeof meta?.logBytes !== 'number' || typeof meta.metaBytes === 'number') return;
  const { stdout } = await exec('du', ['-s', '-x', '-B1', mountPoint], { timeoutMs: TOOL_TIMEOUT_MS * 10 });
  const files = Number(stdout.split(/\s/)[0]);
  if (!Number.isFinite(files)) return;
  await writeMeta(mountPoint, { ...meta, metaBytes: Math.max(0, usedOf(await statfs(mountPoint)) - files) });
}

export async function fsSize(mountPoint: string): Promise<number | undefined> {
  return (await fsState(mountPoint)).sizeBytes;
}

/** statfs of a mounted image with what META says: the size in force, and what the files use (both undefined without META). */
export async function fsState(
  mountPoint: string,
): Promise<{ sizeBytes?: number; totalBytes: number; usedBytes: number; filesBytes?: number; reservedBytes: number }> {
  const [meta, s] = await Promise.all([readMeta(mountPoint), statfs(mountPoint)]);
  const totalBytes = s.blocks * s.bsize;
  const usedBytes = usedOf(s);
  // acetate's reserve (room-reserve.ts): neither the container's files nor XFS's.
  const reserved = reservedBytes(mountPoint);
  return {
    ...(typeof meta?.logBytes === 'number' ? { sizeBytes: totalBytes + meta.logBytes } : {}),
    totalBytes,
    usedBytes,
    ...(typeof meta?.metaBytes === 'number' ? { filesBytes: Math.max(0, usedBytes - meta.metaBytes - reserved) } : {}),
    reservedBytes: reserved,
  };
}
