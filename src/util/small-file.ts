/**
 * Small, local file operations done in one synchronous call: records, status files, cgroup and
 * /proc files, runc's state.json, a container's directories.
 *
 * Each fs.promises call is one or more thread-pool round trips: readFile alone is four (open,
 * fstat, read, close) and costs ~130 µs of CPU, where readFileSync costs ~5 µs (measured: 6000
 * reads of a tiny file, 800 ms vs 25 ms). list() reads several files per container, and creating
 * one container takes some forty such operations, so over a thousand containers this is the
 * difference between a no-op pass of ~800 ms and ~30 ms, and a create path that waits ~5 ms per
 * container on the thread pool. The event loop is blocked for microseconds per call. Not for large
 * files, or for anything on a network filesystem.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { releaseSpaceReserve } from './space-reserve.js';

/** One buffer for all reads: they are synchronous, so never two at a time. */
const buffer = Buffer.allocUnsafe(64 * 1024);

/**
 * The file's text: open, read until end of file, close. readFileSync also fstat()s, and reads
 * /proc and cgroup files (which report size 0 or 4096) in several steps.
 */
export function readSmallFileNow(file: string): string {
  const fd = openSync(file, 'r');
  try {
    let n = 0;
    for (;;) {
      const r = readSync(fd, buffer, n, buffer.length - n, null);
      if (r === 0) return buffer.toString('utf8', 0, n);
      n += r;
      if (n === buffer.length) break;
    }
  } finally {
    closeSync(fd);
  }
  return readFileSync(file, 'utf8'); // larger than the buffer
}

export async function readSmallFile(file: string): Promise<string> {
  return readSmallFileNow(file);
}

let atomicWrites = 0;

/**
 * Write through a temp file next to it and rename: readers (and a SIGKILL) see the old or the new
 * file, never a torn one; the temp file is removed on failure. The mode is set whatever the umask.
 * The last component is replaced, never followed (a symlink planted there is replaced, not written
 * through), and the new file is the writing process's (root's), whoever owned the old one
 * (write-file-atomic gave it the old file's owner: nothing of acetate's relies on that; its
 * records are to be root's). No fsync: a disk flush per write would slow every create.
 *
 * Not write-file-atomic's sync form, which this replaced: it registered and removed signal-exit's
 * handlers of 17 signals at every write to remove its temp file on a signal, which cannot arrive
 * in JavaScript during a synchronous write; that was ~1,300 system calls per create (sigaction,
 * sigprocmask and libuv's signal lock pipe, counted with `perf trace`) for nothing.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, mode: number): void {
  // Random too: a temp file a SIGKILL left is never removed, and a later process with the same
  // pid (a fresh pid namespace repeats them) would meet it at the same count (`wx`: EEXIST).
  const tmp = `${file}.${process.pid}-${++atomicWrites}-${randomBytes(4).toString('hex')}.tmp`;
  let fd: number | undefined = openSync(tmp, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    writeFileSync(fd, data);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** writeFileAtomicSync, with the space reserve given up once on a full state dir. */
export async function writeSmallFileAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  try {
    writeFileAtomicSync(file, text, mode);
  } catch (err) {
    // A full state dir: give up the space reserve kept for this (space-reserve.ts) and try once more.
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC' && releaseSpaceReserve(file)) {
      try {
        writeFileAtomicSync(file, text, mode);
        return;
      } catch (again) {
        throw new Error(`cannot write ${file}`, { cause: again });
      }
    }
    throw new Error(`cannot write ${file}`, { cause: err });
  }
}

export async function writeSmallFile(file: string, text: string, mode = 0o600): Promise<void> {
  writeFileSync(file, text, { mode });
}

/** mkdir -p of each dir that does not exist yet, in order (one stat for an existing one). */
export async function makeDirs(dirs: readonly string[], mode = 0o700): Promise<void> {
  for (const d of dirs) if (!existsSync(d)) mkdirSync(d, { recursive: true, mode });
}

/** rm -f (rm -rf with recursive) of each path. */
export async function removePaths(paths: readonly string[], opts: { recursive?: boolean } = {}): Promise<void> {
  for (const p of paths) rmSync(p, { force: true, recursive: opts.recursive ?? false });
}

/** Whether a path exists (any error, e.g. ENOENT or EACCES, counts as no; no exception is built). */
export function existsNow(p: string): boolean {
  return existsSync(p);
}
