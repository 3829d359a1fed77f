/**
 * Temporary dirs in the containers dir: a new container is built under `.creating-<pid>-…` and
 * renamed into place, a removed one leaves under `.removing-<pid>-…`. What a killed acetate left
 * of them is swept, but only by the process that holds the node lock: a read-only command
 * (`plan`, `get`, `describe`) next to a busy `acetate run` must never remove a dir that the other
 * process is building.
 */
import { readdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { makeDirs } from '../../util/small-file.js';
import type { RuncContext } from './runc-context.js';

/** `.creating-<pid>-<id>-<random>` / `.removing-<pid>-<id>-<random>` in the containers dir (see withTempDir). */
const TEMP_NAME = /^\.(?:creating|removing)-(\d+)-(.+)-[0-9a-f]{8}$/;

/**
 * Runs fn with a fresh temporary path in the containers dir (`.<what>-<pid>-<id>-<random>`),
 * removed afterwards whatever fn did with it. Leftovers of a killed acetate are swept by list().
 */
export async function withTempDir(rc: RuncContext, what: 'creating' | 'removing', id: string, fn: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(rc.paths.containersDir, `.${what}-${process.pid}-${id}-${randomBytes(4).toString('hex')}`);
  rc.tempInFlight.add(tmp);
  try {
    await makeDirs([rc.paths.containersDir]);
    await fn(tmp);
  } finally {
    await rm(tmp, { recursive: true, force: true }); // a private area can be large: off the event loop
    rc.tempInFlight.delete(tmp);
  }
}

/**
 * Remove what killed acetates left of creates and removals. Does nothing unless this process
 * holds the node lock; and holding it, every temp dir not in flight here is a leftover, whatever
 * its pid says: only the holder creates or removes containers, so the writer of another pid's dir
 * is gone even when its pid now names an unrelated process (pids are reused: pid_max may be 32768).
 */
export async function sweepTempDirs(rc: RuncContext, names: readonly string[], onlyId?: string): Promise<void> {
  if (!rc.lockHeld) return;
  for (const n of names) {
    const m = TEMP_NAME.exec(n);
    if (!m || (onlyId !== undefined && m[2] !== onlyId)) continue;
    const full = path.join(rc.paths.containersDir, n);
    if (rc.tempInFlight.has(full)) continue;
    await rm(full, { recursive: true, force: true });
  }
}

/**
 * The temp dirs of one container: remove() ends with this, so that removing again a container
 * whose earlier removal was SIGKILLed after its rename leaves nothing, without waiting for the
 * next list(). Like sweepTempDirs, only in the lock holder.
 */
export async function sweepTempDirsOf(rc: RuncContext, id: string): Promise<void> {
  if (!rc.lockHeld) return;
  const names = await readdir(rc.paths.containersDir).catch(() => [] as string[]);
  await sweepTempDirs(
    rc,
    names.filter((n) => n.startsWith('.')),
    id,
  );
}
