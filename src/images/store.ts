/**
 * The image store: content-addressed, under the state dir, shared by every container of the node.
 *
 *   <stateDir>/images/blobs/sha256/<hex>   manifests, configs, compressed layers (skopeo's shared blob dir)
 *   <stateDir>/images/layers/<hex>/        each layer unpacked once, named by its diff_id: overlay lower dirs
 *   <stateDir>/images/images/<hex>.json    one record per image, named by its id (see ImageRecord)
 *   <stateDir>/images/refs/<hex>.json      a name (`repo:tag`, `repo@digest`) → image id
 *   <stateDir>/images/tmp/pull-<pid>-…     OCI layouts of pulls in progress
 *   <stateDir>/images/pulls/<hex>.lock     flock(2) per image: one download of an image on the node at a time
 *   <stateDir>/images/acetate-images.lock  users shared, `image rm|prune` exclusive (images-lock.ts)
 *
 * An image exists when its record exists, and the record is written last, after every blob was
 * verified and every layer unpacked: a pull killed at any moment leaves at most blobs and whole
 * layers nobody references (removed by prune) and a temp dir (swept by the next pull or prune),
 * never a half layer that is used. A pull or import holds the images lock shared until its record
 * and names are written, so a prune never takes its blobs and layers for garbage.
 */
import { terminalText } from '../util/terminal-text.js';
import { randomBytes, createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../util/exec.js';
import { forgetFiles, readJson, writeJsonAtomic } from '../util/json-file.js';
import { ImagePullError, ImageStoreError } from './errors.js';
import type { ImageRecord, ImageRootfs } from './image-record.js';
import { commitLayout, readLayoutIndex, type LayoutMeta } from './layout-commit.js';
import { formatReference, parseReference, pinnedReference, transportReference, type ImageReference } from '../api/image-reference.js';
import { qualifyImage } from '../api/image-short-names.js';
import { platformDigest, Skopeo, type SkopeoOptions } from './skopeo.js';
import { digestHex, layerDir } from './unpack.js';
import { pruneStore, sweepStoreTemp } from './gc.js';
import { archiveName, isDir } from './store-files.js';
import { ImagesLock, type ImagesLockOptions } from './images-lock.js';
import { flockFd, openLockFile } from '../util/flock.js';
import { layersThatFit } from './oci-process.js';
import { checkFreeSpace } from '../runtime/free-space.js';
import { ImagePathError, readImageFile } from './layered-path.js';
import { PullWatch, type ManifestBlob, type PullProgress } from './pull-progress.js';

export interface ImageStoreOptions extends SkopeoOptions {
  stateDir: string;
  lock?: ImagesLockOptions;
}

interface RefEntry {
  name: string;
  id: string;
}

export class ImageStore {
  readonly dir: string;
  readonly blobsDir: string;
  readonly layersDir: string;
  private readonly recordsDir: string;
  private readonly refsDir: string;
  readonly tmpDir: string;
  readonly pullLocksDir: string;
  readonly skopeo: Skopeo;
  /** Shared by users of the store, exclusive for `image rm|prune` (see images-lock.ts). */
  readonly lock: ImagesLock;
  private readonly registriesConf: string | undefined;
  /** How long a pull waits for another process's pull of the same image (its copy's own limit). */
  private readonly pullWaitMs: number;
  private readonly inFlight = new Map<string, Promise<ImageRecord>>();
  /** rootfs() per image id: layer dirs never change once in place (100 creates, one look). */
  private readonly rootfsCache = new Map<string, ImageRootfs>();
  /** Told the progress of each download, about once a second (the terminal of `image pull` and `apply`). */
  onPullProgress?: (p: PullProgress) => void;

  constructor(opts: ImageStoreOptions) {
    this.dir = path.join(path.resolve(opts.stateDir), 'images');
    this.blobsDir = path.join(this.dir, 'blobs');
    this.layersDir = path.join(this.dir, 'layers');
    this.recordsDir = path.join(this.dir, 'images');
    this.refsDir = path.join(this.dir, 'refs');
    this.tmpDir = path.join(this.dir, 'tmp');
    this.pullLocksDir = path.join(this.dir, 'pulls');
    this.skopeo = new Skopeo({ ...opts, tmpDir: opts.tmpDir ?? this.tmpDir, homeDir: opts.homeDir ?? path.join(this.dir, 'skopeo-home') });
    this.registriesConf = opts.registriesConf;
    this.pullWaitMs = opts.copyTimeoutMs ?? 600_000;
    this.lock = new ImagesLock(this.dir, opts.lock);
  }

  private recordPath(id: string): string {
    return path.join(this.recordsDir, `${digestHex(id)}.json`);
  }

  private refPath(name: string): string {
    return path.join(this.refsDir, `${createHash('sha256').update(name).digest('hex')}.json`);
  }

  blobPath(digest: string): string {
    return path.join(this.blobsDir, 'sha256', digestHex(digest));
  }

  /** The record of an image, or undefined. */
  async get(id: string): Promise<ImageRecord | undefined> {
    return readJson<ImageRecord>(this.recordPath(id)).catch(() => undefined);
  }

  /** The image id a name (`repo:tag` or `repo@digest`, canonical) points to on this node. */
  async lookup(name: string): Promise<string | undefined> {
    const ref = await readJson<RefEntry>(this.refPath(name)).catch(() => undefined);
    if (!ref || ref.name !== name) return undefined;
    return (await this.get(ref.id)) ? ref.id : undefined;
  }

  async list(): Promise<ImageRecord[]> {
    const names = await readdir(this.recordsDir).catch(() => [] as string[]);
    const out: ImageRecord[] = [];
    for (const n of names.filter((x) => /^[a-f0-9]{64}\.json$/.test(x)).sort()) {
      const r = await this.get(`sha256:${n.slice(0, 64)}`);
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.pulledAt.localeCompare(b.pulledAt));
  }

  /** Layer dirs and config of an image on this node; throws if it is not (complete) here. */
  async rootfs(id: string): Promise<ImageRootfs> {
    const cached = this.rootfsCache.get(id);
    if (cached && (await this.get(id))) return cached;
    const rec = await this.get(id);
    if (!rec) throw new ImageStoreError(`image ${id} is not on this node`);
    const lowerDirs = rec.layers.map((l) => layerDir(this.layersDir, l.diffID)).reverse();
    for (const d of lowerDirs) {
      if (!(await isDir(d))) throw new ImageStoreError(`image ${id}: layer ${d} is missing (removed by hand?); pull the image again`);
    }
    const out: ImageRootfs = { id, lowerDirs, config: rec.config };
    // Resolved inside the image's rootfs: an image whose /etc links to the node's /etc has no passwd
    // of its own. One the container could not read either (a link loop, too large) is none: a User
    // name is then refused by resolveUser, saying so; a numeric User needs no file.
    const passwd = await imageFileOrNone(lowerDirs, 'etc/passwd');
    const group = await imageFileOrNone(lowerDirs, 'etc/group');
    if (passwd !== undefined) out.passwd = passwd;
    if (group !== undefined) out.group = group;
    this.rootfsCache.set(id, out);
    return out;
  }

  /**
   * Makes sure the image `id` (what `ref` resolved to) is here, pulling `repo@id` if it is not.
   * Concurrent calls for one id share one pull. Whoever goes on to use the image holds the images
   * lock shared across this call and that use (see ensureImageRootfs).
   *
   * The lock is taken before the pull in flight is looked up: a pull shared is then always one
   * that holds the lock. Were it shared first, a pull started by a caller with no hold could be
   * parked for a waiting prune while a caller holding the lock (a create) awaits it: the prune
   * waits for that holder, which waits for the parked pull, until the prune gives up.
   */
  ensure(ref: string, id: string): Promise<ImageRecord> {
    return this.lock.shared(async () => {
      const have = await this.get(id);
      if (have) return have;
      const running = this.inFlight.get(id);
      if (running) return running;
      const p = this.pullPinned(parseReference(ref), id).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, p);
      return p;
    });
  }

  /** `acetate image pull`: resolves the name at the registry now, pulls what is missing, tags it. */
  async pull(ref: string): Promise<ImageRecord> {
    // With a digest the tag beside it means nothing (as Docker takes `name:tag@sha256:…`): the name kept is repo@digest.
    const name = transportReference(parseReference(qualifyImage(ref, this.registriesConf)));
    const id = await this.skopeo.resolveDigest(name);
    // Until the name is written: a prune --all between the record and the name would remove the image just pulled.
    return this.lock.shared(async () => {
      const rec = await this.ensure(name, id);
      await this.tag(name, id);
      return rec;
    });
  }

  private async pullPinned(r: ImageReference, id: string): Promise<ImageRecord> {
    // One download per image on the node: another process pulling the same image is waited for, then found.
    return this.withPullLock(id, async () => {
      const have = await this.get(id);
      if (have) return have;
      return this.download(r, id);
    });
  }

  private async withPullLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const fd = openLockFile(path.join(this.pullLocksDir, `${digestHex(id)}.lock`));
    try {
      if (!(await flockFd(fd, { mode: 'exclusive', wait: this.pullWaitMs }))) {
        throw new ImagePullError(`${id}: another process has been pulling this image for ${Math.round(this.pullWaitMs / 1000)} s; try again`);
      }
      return await fn();
    } finally {
      closeSync(fd); // releases the lock
    }
  }

  /**
   * The image manifest, read (and hashed against id) before anything is downloaded: an image with
   * more layers than its overlay mount can take is refused here, not after its last blob.
   */
  private async checkManifest(pinned: string, id: string): Promise<ManifestBlob[]> {
    const raw = await this.skopeo.rawManifest(pinned);
    if (platformDigest(raw, pinned, id) !== id) throw new ImagePullError(`${pinned}: is an index, not the image manifest it was resolved to`);
    const blobs = manifestBlobs(raw);
    const layers = blobs.length;
    const fit = layersThatFit(this.layersDir);
    if (layers > fit) {
      throw new ImagePullError(
        `${pinned}: the image has ${layers} layers; at most ${fit} fit in an overlay mount with the store at ${this.layersDir} (nothing downloaded)`,
      );
    }
    return blobs;
  }

  private async download(r: ImageReference, id: string): Promise<ImageRecord> {
    const pinned = pinnedReference(r, id);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    checkFreeSpace(this.dir, `pulling ${pinned}`);
    const blobs = await this.checkManifest(pinned, id);
    return this.withLayout(async (layout) => {
      const watch = new PullWatch({
        ref: pinned,
        id,
        layers: blobs,
        blobPath: (d) => this.blobPath(d),
        layoutDir: layout,
        pullsDir: this.pullLocksDir,
        onProgress: (p) => this.onPullProgress?.(p),
      });
      await this.skopeo.copyToLayout(`docker://${pinned}`, layout, this.blobsDir, pinned, watch).finally(() => watch.finish());
      const names = r.tag !== undefined && r.digest === undefined ? [formatReference({ ...r, digest: undefined })] : [];
      return this.commit(layout, { id, names, repoDigests: [pinned], source: `docker://${pinned}` });
    });
  }

  /** `acetate image import FILE [NAME]`: a `docker save` or OCI archive, offline. */
  async importArchive(file: string, name?: string): Promise<ImageRecord> {
    const members = (
      await exec('tar', ['-tf', file], { maxBuffer: 64 * 1024 * 1024 }).catch((err: unknown) => {
        throw new ImageStoreError(`${file} is not a tar archive`, { cause: err });
      })
    ).stdout
      .split('\n')
      .map((m) => m.replace(/^\.\//, ''));
    const transport = members.includes('oci-layout') ? 'oci-archive' : members.includes('manifest.json') ? 'docker-archive' : undefined;
    if (!transport) throw new ImageStoreError(`${file} is neither a \`docker save\` archive (manifest.json) nor an OCI archive (oci-layout)`);
    const given = name ?? (await archiveName(file, transport));
    const parsed = given ? parseReference(given) : undefined;
    if (parsed?.digest !== undefined && name === undefined) {
      // Docker's load refuses RepoTags that are not tags: an archive cannot name a digest for itself.
      throw new ImageStoreError(
        `${file}: the archive names itself "${terminalText(given!, 200)}", a digest name; only tags are taken from an archive (give NAME to import it under a tag)`,
      );
    }
    const canonical = parsed ? formatReference(parsed) : undefined;
    return this.withLayout(async (layout) => {
      await this.skopeo.copyToLayout(`${transport}:${file}`, layout, this.blobsDir, file);
      const id = (await readLayoutIndex(layout)).manifests[0]!.digest;
      if (parsed?.digest !== undefined && parsed.digest !== id) {
        // A digest name means that content: `@sha256:X` on other bytes would let a pinned container run them.
        throw new ImageStoreError(
          `${file}: NAME ${canonical} names digest ${parsed.digest}, but the archive's manifest is ${id}; import it under a tag, or with its own digest`,
        );
      }
      const rec = await this.commit(layout, { id, names: canonical ? [canonical] : [], repoDigests: [], source: `${transport}:${file}` });
      if (canonical) await this.tag(canonical, id);
      return rec;
    });
  }

  /** Records that `name` points to `id` on this node. */
  async tag(name: string, id: string): Promise<void> {
    await mkdir(this.refsDir, { recursive: true, mode: 0o700 });
    await writeJsonAtomic(this.refPath(name), { name, id } satisfies RefEntry);
  }

  /** Runs fn on a temp OCI layout, holding the images lock shared: what it writes is garbage to a prune until its record is. */
  private withLayout<T>(fn: (layout: string) => Promise<T>): Promise<T> {
    return this.lock.shared(() => this.inLayout(fn));
  }

  private async inLayout<T>(fn: (layout: string) => Promise<T>): Promise<T> {
    await this.sweepTemp();
    await mkdir(path.join(this.blobsDir, 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(this.layersDir, { recursive: true, mode: 0o755 });
    await mkdir(this.recordsDir, { recursive: true, mode: 0o700 });
    const layout = path.join(this.tmpDir, `pull-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(layout, { recursive: true, mode: 0o700 });
    try {
      return await fn(layout);
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
  }

  /** Verifies and unpacks the copied image (see layout-commit.ts), then writes its record (last) and its names. */
  private async commit(layout: string, meta: LayoutMeta): Promise<ImageRecord> {
    const rec = await commitLayout(layout, meta, { layersDir: this.layersDir, blobPath: (d) => this.blobPath(d) });
    const prev = await this.get(meta.id);
    if (prev) {
      rec.names = [...new Set([...prev.names, ...rec.names])];
      rec.repoDigests = [...new Set([...prev.repoDigests, ...rec.repoDigests])];
    }
    await this.writeRecord(rec);
    for (const n of meta.names) await this.tag(n, meta.id);
    for (const n of meta.repoDigests) await this.tag(n, meta.id);
    return rec;
  }

  /** The step that makes an image exist, after its layers are in place (a method of its own: tests pause a pull here). */
  protected async writeRecord(rec: ImageRecord): Promise<void> {
    await writeJsonAtomic(this.recordPath(rec.id), rec);
  }

  /**
   * Runs fn with the images lock exclusive: `image rm|prune` decide what is unused and delete it
   * there, after the users in flight are done (onWait: when it starts waiting for them).
   */
  exclusive<T>(fn: () => Promise<T>, opts: { onWait?: (file: string) => void } = {}): Promise<T> {
    return this.lock.exclusive(fn, opts);
  }

  /**
   * `acetate image rm`: drops the names and the record of an image (by name or id); refused while
   * containers use it (`inUseBy`). Its layers stay until `prune`.
   */
  remove(nameOrId: string, opts: { inUseBy: (id: string) => string[] }): Promise<ImageRecord> {
    return this.lock.exclusive(() => this.removeUnlocked(nameOrId, opts));
  }

  private async removeUnlocked(nameOrId: string, opts: { inUseBy: (id: string) => string[] }): Promise<ImageRecord> {
    const id = await this.idOf(nameOrId);
    const rec = id ? await this.get(id) : undefined;
    if (!id || !rec) throw new ImageStoreError(`image '${nameOrId}' is not on this node`);
    const users = opts.inUseBy(id);
    if (users.length) throw new ImageStoreError(`image ${nameOrId} (${id}) is in use by ${users.join(', ')}; remove those containers first`);
    await rm(this.recordPath(id), { force: true });
    forgetFiles([this.recordPath(id)]);
    this.rootfsCache.delete(id);
    for (const f of await readdir(this.refsDir).catch(() => [] as string[])) {
      const p = path.join(this.refsDir, f);
      const e = await readJson<RefEntry>(p).catch(() => undefined);
      if (!e || e.id === id) {
        await rm(p, { force: true });
        forgetFiles([p]);
      }
    }
    return rec;
  }

  /** A name, a full id or a unique id prefix (at least 12 hex digits) → id. */
  async idOf(nameOrId: string): Promise<string | undefined> {
    const hex = nameOrId.replace(/^sha256:/, '');
    if (/^[a-f0-9]{12,64}$/.test(hex)) {
      const hits = (await this.list()).filter((r) => digestHex(r.id).startsWith(hex));
      if (hits.length === 1) return hits[0]!.id;
    }
    try {
      return await this.lookup(formatReference(parseReference(qualifyImage(nameOrId, this.registriesConf))));
    } catch {
      return undefined;
    }
  }

  /**
   * Whether the store was ever made on this node (its dir exists). `image rm|prune` on a node
   * without it have nothing to do, and make nothing: the lock file would make the dirs.
   */
  exists(): Promise<boolean> {
    return isDir(this.dir);
  }

  /** See gc.ts. */
  prune(opts: { unusedImages?: string[] } = {}): ReturnType<typeof pruneStore> {
    return this.lock.exclusive(() => pruneStore(this, opts));
  }

  /** Temp dirs of pulls and unpacks whose process is gone (see gc.ts). */
  sweepTemp(): Promise<void> {
    return sweepStoreTemp(this);
  }
}

/** The layers an image manifest lists (digest and size; bounded and checked by commitLayout later). */
function manifestBlobs(raw: string): ManifestBlob[] {
  const layers = (JSON.parse(raw) as { layers?: unknown }).layers;
  if (!Array.isArray(layers)) return [];
  return (layers as { digest?: unknown; size?: unknown }[]).map((l) => ({
    // Anything but a sha256 digest is refused by commitLayout; progress only needs a safe name.
    digest: typeof l?.digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(l.digest) ? l.digest : `sha256:${'0'.repeat(64)}`,
    size: typeof l?.size === 'number' && Number.isSafeInteger(l.size) && l.size > 0 ? l.size : 0,
  }));
}

function imageFileOrNone(lowerDirs: string[], rel: string): Promise<string | undefined> {
  return readImageFile(lowerDirs, rel).catch((err: unknown) => {
    if (err instanceof ImagePathError) return undefined;
    throw err;
  });
}

/**
 * The rootfs of a container's pinned image, pulled first if it is not on the node. A caller that
 * is not yet a user of the image (a create: no record names it) holds the images lock shared
 * across this and until its record is written.
 */
export async function ensureImageRootfs(store: ImageStore, image: { ref: string; digest?: string }): Promise<ImageRootfs> {
  if (!image.digest) throw new ImagePullError(`image ${image.ref} has not been resolved to a digest`);
  await store.ensure(image.ref, image.digest);
  return store.rootfs(image.digest);
}
