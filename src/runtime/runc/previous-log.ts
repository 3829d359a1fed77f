/**
 * The previous log (`acetate logs --previous`): the log of the container's last run before a
 * restart or a replace, one kept per container. It is the log file itself, renamed, so it is as
 * bounded as the log was (conmon's --log-size-max) and costs no copy.
 */
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerPaths } from './paths.js';

/** Makes the current log the previous one (replacing the one before); no log, nothing changes. */
export async function keepAsPreviousLog(cp: Pick<ContainerPaths, 'log' | 'previousLog'>): Promise<void> {
  await mkdir(path.dirname(cp.previousLog), { recursive: true, mode: 0o700 });
  try {
    await rename(cp.log, cp.previousLog);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
