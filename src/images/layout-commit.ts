/**
 * The step of a pull or import that makes a copied OCI layout part of the store: every blob it
 * uses is verified against its digest, every layer not yet in the store is unpacked, and the
 * image's record is built. Never trusts what is on disk: a corrupt blob is removed (the next pull
 * fetches it again) and never becomes a layer.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ImagePullError, ImageStoreError } from './errors.js';
import type { ImageLayer, ImageRecord } from './image-record.js';
import type { ImageProcessConfig } from './process.js';
import { isDir, pick } from './store-files.js';
import { layerDir, unpackLayer, verifyBlob } from './unpack.js';

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** What the caller knows of the image besides the layout: its id, names and origin. */
export interface LayoutMeta {
  id: string;
  names: string[];
  repoDigests: string[];
  source: string;
}

/** Where the store keeps blobs and unpacked layers. */
export interface BlobStore {
  layersDir: string;
  blobPath(digest: string): string;
}

export async function readLayoutIndex(layout: string): Promise<{ manifests: OciDescriptor[] }> {
  return JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
}

/** Verifies every blob of the copied image and unpacks its layers; returns its record (not yet written). */
export async function commitLayout(layout: string, meta: LayoutMeta, store: BlobStore): Promise<ImageRecord> {
  const md = (await readLayoutIndex(layout)).manifests[0];
  if (!md) throw new ImageStoreError(`${meta.source}: the copied layout has no manifest`);
  // The image is stored under meta.id: what was copied must be that manifest, whatever the transport said.
  if (md.digest !== meta.id) throw new ImagePullError(`${meta.source}: asked for ${meta.id}, got a manifest whose digest is ${md.digest}; refused`);
  await verifyOrDrop(store, md.digest, 'manifest');
  const manifest = JSON.parse(await readFile(store.blobPath(md.digest), 'utf8')) as { config: OciDescriptor; layers: OciDescriptor[] };
  await verifyOrDrop(store, manifest.config.digest, 'config');
  const config = JSON.parse(await readFile(store.blobPath(manifest.config.digest), 'utf8')) as {
    config?: ImageProcessConfig;
    rootfs?: { diff_ids?: string[] };
  };
  const diffIDs = config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== manifest.layers.length) {
    throw new ImageStoreError(`${meta.source}: the config lists ${diffIDs.length} diff_ids for ${manifest.layers.length} layers`);
  }
  const layers: ImageLayer[] = [];
  for (const [i, l] of manifest.layers.entries()) {
    const diffID = diffIDs[i]!;
    layers.push({ digest: l.digest, diffID, mediaType: l.mediaType, size: l.size });
    if (await isDir(layerDir(store.layersDir, diffID))) continue; // unpacked once, shared
    await verifyOrDrop(store, l.digest, 'layer');
    try {
      await unpackLayer({ blob: store.blobPath(l.digest), mediaType: l.mediaType, diffID, layersDir: store.layersDir });
    } catch (err) {
      await rm(store.blobPath(l.digest), { force: true }); // its content does not match the config: fetch it again next time
      throw new ImagePullError(`${meta.source}: ${err instanceof Error ? err.message : String(err)}`, 'ErrImagePull', { cause: err });
    }
  }
  return {
    id: meta.id,
    names: meta.names,
    repoDigests: meta.repoDigests,
    manifestDigest: md.digest,
    configDigest: manifest.config.digest,
    config: pick(config.config ?? {}),
    layers,
    pulledAt: new Date().toISOString(),
    source: meta.source,
  };
}

async function verifyOrDrop(store: BlobStore, digest: string, what: string): Promise<void> {
  try {
    await verifyBlob(store.blobPath(digest), digest, what);
  } catch (err) {
    await rm(store.blobPath(digest), { force: true }); // corrupt: the next pull fetches it again
    throw new ImagePullError(err instanceof Error ? err.message : String(err), 'ErrImagePull', { cause: err });
  }
}
