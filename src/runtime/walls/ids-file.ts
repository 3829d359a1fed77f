/**
 * A container's record of its ids, <containerDir>/ids.json (see id-ranges.ts for who writes it):
 * the range it runs with and who owns its private area's files. Read by the allocator, the start's
 * checks and the node's claims (id-claims.ts: a claim is live while its owner's ids.json names the range).
 */
import path from 'node:path';
import { readJson, readJsonUncached, writeJsonAtomic } from '../../util/json-file.js';
import type { IdRange } from './id-pool.js';
import type { HoldsRange } from './id-claims.js';

export interface IdsFile {
  /** Owner base of the private area: 0 = the node's ids. */
  base: number;
  size: number;
  /** The range the container runs with; absent: the node's ids. */
  range?: IdRange;
}

export const IDS_FILE = 'ids.json';

export function idsFileOf(containerDir: string): string {
  return path.join(containerDir, IDS_FILE);
}

export function readIds(containerDir: string): Promise<IdsFile | undefined> {
  return readJson<IdsFile>(idsFileOf(containerDir)).catch(() => undefined);
}

/**
 * The range a container's record says it runs with. acetate before per-container ranges wrote only
 * `base` (every unprivileged container on the node's one shared range): that range is the record.
 */
export function recordedRange(ids: IdsFile | undefined): IdRange | undefined {
  if (!ids) return undefined;
  if (ids.range) return ids.range;
  return ids.base !== 0 ? { hostID: ids.base, size: ids.size } : undefined;
}

/** The ranges an ids.json holds: the one it runs with, and the owner of its files when another. */
export function rangesOf(ids: IdsFile | undefined): IdRange[] {
  const r = recordedRange(ids);
  const out = r ? [r] : [];
  if (ids && ids.base !== 0 && ids.base !== r?.hostID) out.push({ hostID: ids.base, size: ids.size });
  return out;
}

export async function writeIds(dir: string, ids: IdsFile): Promise<void> {
  await writeJsonAtomic(idsFileOf(dir), ids);
}

/**
 * A claim's owner still holds the range: its container dir is there and its ids.json names the
 * range (or the owner of its files). Only a missing dir or file says no: an ids.json that cannot be
 * read (EIO, EMFILE, bad JSON) counts as holding it, so a failed read never frees a range. Read
 * uncached: other instances' records are not kept in this process.
 */
export const holdsRange: HoldsRange = async (o, hostID) => {
  let ids: IdsFile | undefined;
  try {
    ids = await readJsonUncached<IdsFile>(idsFileOf(path.join(o.stateDir, 'containers', o.container)));
  } catch {
    return true;
  }
  return rangesOf(ids).some((r) => r.hostID === hostID);
};
