/**
 * Reads a container's state the way `runc state` computes it, from runc's own state.json under
 * acetate's runc root, without spawning runc: a reconcile of one key, and a resync over a
 * thousand keys, then cost file reads instead of a runc process each. Tied to runc 1.x's
 * libcontainer layout; anything unexpected makes the caller fall back to the runc binary.
 */
import { access, readdir } from 'node:fs/promises';
import { readSmallFile } from '../../util/small-file.js';
import path from 'node:path';
import type { RuncState } from './runc-cli.js';

interface StateJson {
  id?: string;
  init_process_pid?: number;
  init_process_start?: number;
  created?: string;
  config?: { rootfs?: string; labels?: string[] };
}

/** The state file could not be understood; ask runc itself. */
export class UnreadableStateError extends Error {}

/** Start time of a process in clock ticks (field 22 of /proc/PID/stat), undefined if it is gone. */
async function startTimeOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readSmallFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** State of container `id` under `root`; undefined when runc does not know it. */
export async function readRuncStateFile(root: string, id: string): Promise<RuncState | undefined> {
  let raw: StateJson;
  try {
    raw = JSON.parse(await readSmallFile(path.join(root, id, 'state.json'))) as StateJson;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UnreadableStateError(`cannot read runc state of ${id}`, { cause: err });
  }
  const pid = raw.init_process_pid;
  const labels = raw.config?.labels;
  if (typeof pid !== 'number' || typeof raw.init_process_start !== 'number' || !Array.isArray(labels)) {
    throw new UnreadableStateError(`runc state of ${id} has an unknown layout`);
  }
  const annotations: Record<string, string> = {};
  let bundle = '';
  for (const l of labels) {
    const i = l.indexOf('=');
    if (i < 0) continue;
    if (l.slice(0, i) === 'bundle') bundle = l.slice(i + 1);
    else annotations[l.slice(0, i)] = l.slice(i + 1);
  }
  // As runc: the init process alive with the same start time is running (or created, while the
  // exec fifo still waits for `runc start`); otherwise the container is stopped.
  const alive = pid > 0 && (await startTimeOf(pid)) === raw.init_process_start;
  const created = alive && (await access(path.join(root, id, 'exec.fifo')).then(() => true, () => false));
  return {
    id: raw.id ?? id,
    pid: alive ? pid : 0,
    status: alive ? (created ? 'created' : 'running') : 'stopped',
    bundle,
    ...(raw.config?.rootfs ? { rootfs: raw.config.rootfs } : {}),
    created: raw.created ?? '',
    annotations,
  };
}

/** Every container under `root`, from their state files. */
export async function readRuncStateFiles(root: string): Promise<RuncState[]> {
  let ids: string[];
  try {
    ids = await readdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const states = await Promise.all(ids.map((id) => readRuncStateFile(root, id)));
  return states.filter((s): s is RuncState => s !== undefined);
}
