/**
 * Reading a seccomp profile file from the node. A Localhost profile is named by the tenant's spec,
 * so where it may come from is the node's choice, as Kubernetes reads localhostProfile only under
 * the kubelet's own seccomp dir: its real path must be inside one of the node's profile dirs
 * (ACETATE_SECCOMP_DIRS, colon-separated; default /etc/acetate/seccomp and Debian's
 * /usr/share/containers), and the file must be a regular file owned by root that only root may
 * write. Otherwise a tenant could name a file it wrote itself (its private area sits on the node)
 * and run with a profile that allows everything.
 *
 * Every profile file, the node's own default too, is opened without blocking (a FIFO never waits
 * for a writer) and read up to MAX_PROFILE_BYTES: a start never hangs or fills memory on it.
 */
import { closeSync, constants, fstatSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { openForReadNonBlocking, readFdPrefix } from '../../util/bounded-read.js';

export const DEFAULT_SECCOMP_DIRS: readonly string[] = ['/etc/acetate/seccomp', '/usr/share/containers'];
/** Docker's default profile is 30 KB; a profile beyond 1 MiB is refused. */
export const MAX_PROFILE_BYTES = 1024 * 1024;

export class ProfileFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProfileFileError';
  }
}

/** The node's profile dirs for Localhost profiles. */
export function seccompDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.ACETATE_SECCOMP_DIRS;
  if (!v) return [...DEFAULT_SECCOMP_DIRS];
  return v.split(':').filter((d) => d.startsWith('/'));
}

function inside(p: string, dir: string): boolean {
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return p.startsWith(d);
}

/**
 * The text of a profile file. `localhost`: named by a container's spec, so held to the node's
 * profile dirs and a root-owned file (see above). Throws ProfileFileError saying why.
 */
export function readProfileFile(file: string, opts: { localhost: boolean; env?: NodeJS.ProcessEnv }): string {
  let real: string;
  try {
    real = realpathSync(file);
  } catch (err) {
    throw new ProfileFileError(`cannot read the seccomp profile ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const dirs = opts.localhost ? seccompDirs(opts.env).map((d) => path.resolve(d)) : [];
  if (opts.localhost && !dirs.some((d) => inside(real, d)))
    throw new ProfileFileError(
      `the seccomp profile ${file} is not in one of this node's profile dirs (${dirs.join(', ')}; ACETATE_SECCOMP_DIRS): a Localhost profile is a file the node's administrator put there`,
    );
  let fd: number;
  try {
    fd = openForReadNonBlocking(real, constants.O_NOFOLLOW);
  } catch (err) {
    throw new ProfileFileError(`cannot read the seccomp profile ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ProfileFileError(`the seccomp profile ${file} is not a regular file`);
    if (opts.localhost && (st.uid !== 0 || (st.mode & 0o022) !== 0))
      throw new ProfileFileError(
        `the seccomp profile ${file} must be owned by root and writable by root only (it is uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`,
      );
    if (st.size > MAX_PROFILE_BYTES)
      throw new ProfileFileError(`the seccomp profile ${file} is ${st.size} bytes, more than the ${MAX_PROFILE_BYTES} a profile may have`);
    return readFdPrefix(fd, st.size).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
