/**
 * Reading a file someone else controls (a tenant's manifest tree, a profile a container names)
 * without letting it hang or flood acetate: opened non-blocking (a FIFO never waits for a writer)
 * and with O_NOCTTY (a tty never becomes our controlling terminal), and read up to a size the
 * caller has already checked against its bound. Shared by the manifest tree's reads
 * (sources/files/contained.ts) and seccomp profiles (runtime/walls/seccomp-file.ts).
 * The callers decide what may be opened and check the fstat() of the very fd they read.
 */
import { constants, openSync, readSync } from 'node:fs';

/** Opens a path for reading without blocking; extraFlags e.g. O_NOFOLLOW. Throws as openSync does. */
export function openForReadNonBlocking(file: string, extraFlags = 0): number {
  return openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | extraFlags);
}

/**
 * At most `size` bytes from the start of an open fd: size is what fstat() said, already held to
 * the caller's limit, so a file that grows meanwhile is cut there and one that shrinks gives what
 * it has.
 */
export function readFdPrefix(fd: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let n = 0;
  while (n < size) {
    const r = readSync(fd, buf, n, size - n, n);
    if (r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}
