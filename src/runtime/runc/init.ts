/**
 * The init that runs as PID 1 of a container (spec.init, default on), as `podman --init` and
 * `docker --init` do: Debian's catatonit, a static binary bind-mounted read-only into the
 * container, so it works whatever the template holds. PID 1 gets no default signal handlers from
 * the kernel, so a shell or busybox httpd as PID 1 ignores SIGTERM and every stop waits the whole
 * grace period; and orphans are reparented to PID 1, which must reap them. catatonit forwards
 * signals to the command and reaps every child; it exits with the command's status.
 *
 * It is mounted at /dev/.acetate-init: /dev is a fresh tmpfs runc makes for each container, so
 * the mount point needs nothing in the template, writes nothing into the private area, and no
 * later mount (e.g. a tmpfs masking /run) hides it.
 */
import { open } from 'node:fs/promises';
import { findBinary } from '../../util/find-binary.js';
import { RuntimeUnavailableError } from '../runtime.js';
import type { OciMount } from './oci-types.js';

export const INIT_IN_CONTAINER = '/dev/.acetate-init';
export const DEFAULT_INIT_BINARY = 'catatonit';

/** The process args with the init in front: catatonit runs what follows `--`. */
export function argsWithInit(args: readonly string[]): string[] {
  return [INIT_IN_CONTAINER, '--', ...args];
}

export function initMount(hostPath: string): OciMount {
  return { destination: INIT_IN_CONTAINER, type: 'bind', source: hostPath, options: ['bind', 'ro', 'nosuid', 'nodev', 'rprivate'] };
}

const PT_INTERP = 3;

/**
 * Whether an ELF executable is static (no PT_INTERP program header): a dynamic one would need the
 * template's libc and loader, which a template may not have.
 */
export async function isStaticElf(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46) return false;
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = u16(head, is64 ? 56 : 44);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    await fh.close();
  }
}

/** The init binary on this node (absolute path), checked to be a static executable. */
export async function findInit(nameOrPath = DEFAULT_INIT_BINARY): Promise<string> {
  const p = await findBinary(nameOrPath);
  if (!p)
    throw new RuntimeUnavailableError(
      `${nameOrPath} not found (the container init): install it with \`apt-get install -y catatonit\`, or set spec.init: false`,
    );
  if (!(await isStaticElf(p).catch(() => false))) {
    throw new RuntimeUnavailableError(
      `${p} is not a static executable: the container init is bind-mounted into templates that may lack its libraries; use Debian's catatonit or tini-static (ACETATE_INIT)`,
    );
  }
  return p;
}
