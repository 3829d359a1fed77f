/**
 * Progress of a download: skopeo prints none a program can read (its bars are for a terminal), so
 * it is measured from the files being written, once a second: a layer whose blob is in the shared
 * blob dir is done (its size is the manifest's), and the blob being downloaded grows in the OCI
 * layout's dir (containers/image writes it there as `oci-put-blob*` before renaming it into the
 * shared dir). The manifest, read before the copy, gives the totals.
 *
 * Each sample is published to `onProgress` (the terminal of `image pull` / `apply`) and to a file
 * beside the image's pull lock, `<images>/pulls/<hex>.progress.json`, that `describe` reads for a
 * container whose image is being pulled (by this process or another one).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { readJson, writeJsonAtomic } from '../util/json-file.js';
import { pidExists } from '../util/processes.js';
import type { CopyWatch } from './skopeo.js';

export interface PullProgress {
  /** The reference pulled (repo@digest). */
  ref: string;
  /** The image manifest's digest. */
  id: string;
  layersDone: number;
  layers: number;
  bytesDone: number;
  bytes: number;
  /** The pulling process (a file left by a dead one is ignored). */
  pid: number;
  updatedAt: string;
}

export interface ManifestBlob {
  digest: string;
  size: number;
}

/** The file describing the pull of image `id` (in the store's pulls dir). */
export function progressFile(pullsDir: string, id: string): string {
  return path.join(pullsDir, `${id.replace(/^sha256:/, '')}.progress.json`);
}

/** A pull of image `id` in progress now, as last sampled, or undefined. */
export async function readPullProgress(pullsDir: string, id: string): Promise<PullProgress | undefined> {
  const p = await readJson<PullProgress>(progressFile(pullsDir, id)).catch(() => undefined);
  if (!p || typeof p.pid !== 'number' || !pidExists(p.pid)) return undefined;
  return p;
}

/** "Pulling image X: 3/7 layers, 12.3/40.1 MiB" */
export function progressText(p: PullProgress): string {
  const mib = (n: number) => (n / 2 ** 20).toFixed(1);
  return `Pulling image ${p.ref}: ${p.layersDone}/${p.layers} layers, ${mib(p.bytesDone)}/${mib(p.bytes)} MiB`;
}

export class PullWatch implements CopyWatch {
  private written = false;
  private finished = false;

  constructor(
    private readonly o: {
      ref: string;
      id: string;
      layers: ManifestBlob[];
      blobPath: (digest: string) => string;
      layoutDir: string;
      pullsDir: string;
      onProgress?: (p: PullProgress) => void;
    },
  ) {}

  async sample(): Promise<number> {
    const { layers } = this.o;
    const done = await Promise.all(
      layers.map((l) =>
        stat(this.o.blobPath(l.digest)).then(
          () => true,
          () => false,
        ),
      ),
    );
    let bytesDone = layers.reduce((n, l, i) => n + (done[i] ? l.size : 0), 0);
    for (const name of await readdir(this.o.layoutDir).catch(() => [] as string[])) {
      if (!name.startsWith('oci-put-blob')) continue;
      bytesDone += await stat(path.join(this.o.layoutDir, name)).then(
        (s) => s.size,
        () => 0,
      );
    }
    const bytes = layers.reduce((n, l) => n + l.size, 0);
    const p: PullProgress = {
      ref: this.o.ref,
      id: this.o.id,
      layersDone: done.filter(Boolean).length,
      layers: layers.length,
      bytesDone: Math.min(bytesDone, bytes),
      bytes,
      pid: process.pid,
      updatedAt: new Date().toISOString(),
    };
    if (this.finished) return bytesDone; // a sample that outlived its pull writes nothing
    await writeJsonAtomic(progressFile(this.o.pullsDir, this.o.id), p);
    this.written = true;
    if (this.finished) await rm(progressFile(this.o.pullsDir, this.o.id), { force: true });
    else this.o.onProgress?.(p);
    return bytesDone;
  }

  /** The pull is over (done or failed): its file goes. */
  async finish(): Promise<void> {
    this.finished = true;
    if (this.written) await rm(progressFile(this.o.pullsDir, this.o.id), { force: true });
  }
}
