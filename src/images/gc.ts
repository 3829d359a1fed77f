/**
 * Garbage collection of the image store: `acetate image prune` and the sweep of what killed pulls
 * left. Layers and blobs are referenced only by image records, so whatever no record names is
 * garbage. Blobs and layers of a pull in progress are not referenced yet: the pull holds the images
 * lock shared until its record is written, and a prune runs with it exclusive (images-lock.ts).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../util/processes.js';
import type { ImageRecord } from './image-record.js';
import { digestHex } from './unpack.js';

/** What collecting garbage needs of the store (see store.ts): its dirs, its records, removing an image. */
export interface CollectableStore {
  readonly tmpDir: string;
  /** Per-image pull locks (store.ts): files nobody holds while prune has the images lock. */
  readonly pullLocksDir: string;
  readonly layersDir: string;
  readonly blobsDir: string;
  list(): Promise<ImageRecord[]>;
  remove(id: string, opts: { inUseBy: (id: string) => string[] }): Promise<unknown>;
}

/**
 * `acetate image prune`: removes layers and blobs no image record references, and what killed
 * pulls left; with `unusedImages`, first the images no container uses. Called with the images
 * lock held exclusive: no pull of this acetate is in progress. Layers and blobs are kept (and
 * `skipped` says why) while a live process still has a pull's temp dir: see below.
 */
export async function pruneStore(
  store: CollectableStore,
  opts: { unusedImages?: string[] } = {},
): Promise<{ images: string[]; layers: number; blobs: number; bytes: number; skipped?: string }> {
  const images: string[] = [];
  for (const id of opts.unusedImages ?? []) {
    await store.remove(id, { inUseBy: () => [] });
    images.push(id);
  }
  await sweepStoreTemp(store);
  await rm(store.pullLocksDir, { recursive: true, force: true }); // every pull holds the images lock shared: none is held now
  // Under the lock no pull of ours runs, so a `pull-<live pid>-…` dir left after the sweep is a
  // pull of an acetate from before the images lock, which does not take it (a node during a
  // rolling upgrade): its blobs and layers are not referenced yet. Cheap, and kept for that.
  const live = (await readdir(store.tmpDir).catch(() => [] as string[])).filter((n) => n.startsWith('pull-'));
  if (live.length) return { images, layers: 0, blobs: 0, bytes: 0, skipped: `a pull is in progress (${live.join(', ')}); layers and blobs kept` };
  const keepLayers = new Set<string>();
  const keepBlobs = new Set<string>();
  for (const r of await store.list()) {
    keepBlobs.add(digestHex(r.manifestDigest)).add(digestHex(r.configDigest));
    for (const l of r.layers) {
      keepBlobs.add(digestHex(l.digest));
      keepLayers.add(digestHex(l.diffID));
    }
  }
  let layers = 0;
  let blobs = 0;
  let bytes = 0;
  for (const n of await readdir(store.layersDir).catch(() => [] as string[])) {
    if (keepLayers.has(n) || (n.startsWith('.unpack-') && (await isAlive(pidOf(n))))) continue;
    await rm(path.join(store.layersDir, n), { recursive: true, force: true });
    if (!n.startsWith('.')) layers++;
  }
  const blobDir = path.join(store.blobsDir, 'sha256');
  for (const n of await readdir(blobDir).catch(() => [] as string[])) {
    if (keepBlobs.has(n)) continue;
    bytes += (await stat(path.join(blobDir, n)).catch(() => ({ size: 0 }))).size;
    await rm(path.join(blobDir, n), { force: true });
    blobs++;
  }
  return { images, layers, blobs, bytes };
}

/** Temp dirs of pulls and unpacks whose process is gone. */
export async function sweepStoreTemp(store: CollectableStore): Promise<void> {
  for (const [dir, prefix] of [
    [store.tmpDir, 'pull-'],
    [store.layersDir, '.unpack-'],
  ] as const) {
    for (const n of await readdir(dir).catch(() => [] as string[])) {
      if (n.startsWith(prefix) && !(await isAlive(pidOf(n)))) await rm(path.join(dir, n), { recursive: true, force: true });
      // skopeo's own temp files of a killed pull
      else if (dir === store.tmpDir && !n.startsWith('pull-')) {
        const age = Date.now() - (await stat(path.join(dir, n)).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
        if (age > 3_600_000) await rm(path.join(dir, n), { recursive: true, force: true });
      }
    }
  }
}

function pidOf(name: string): number {
  const m = /^(?:pull-|\.unpack-)(\d+)-/.exec(name);
  return m ? Number(m[1]) : 0;
}
