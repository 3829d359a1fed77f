/**
 * Which image digest a container should run: the I/O done BEFORE planning, whose answer the pure
 * plan takes as a fact (pinned into the desired spec, see pin.ts). Reads the local store, and for
 * `Always` (or a name not on the node) asks the registry which digest the name has now (one
 * manifest request; nothing is downloaded or written: `acetate plan` stays a dry run).
 *
 * Kubernetes' pull policies, for a container that already exists:
 * - IfNotPresent / Never: it keeps the digest it was created from, even if the tag moved since
 *   (locally or upstream); a new container gets the digest the name has on the node, else (not
 *   Never) at the registry.
 * - Always: the registry's current digest, every time (cached for `cacheMs`, so 100 containers of
 *   one image cost one request per resync).
 */
import type { ImagePullPolicy } from '../api/types.js';
import { ImagePullError } from './errors.js';
import { parseReference, transportReference } from '../api/image-reference.js';
import type { ImageStore } from './store.js';

export interface ResolverOptions {
  /** How long a registry answer is reused. Default 10 s. */
  cacheMs?: number;
  now?: () => number;
}

export class ImageResolver {
  private readonly cache = new Map<string, { at: number; digest: Promise<string> }>();
  private readonly cacheMs: number;
  private readonly now: () => number;

  constructor(
    readonly store: ImageStore,
    opts: ResolverOptions = {},
  ) {
    this.cacheMs = opts.cacheMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** The digest for `ref` under `policy`; `applied`: the digest the existing container runs (same ref). */
  async resolve(ref: string, policy: ImagePullPolicy, applied?: string): Promise<string> {
    const canonical = transportReference(parseReference(ref)); // name:tag@digest means the digest
    if (applied && policy !== 'Always') return applied;
    if (policy !== 'Always') {
      const local = await this.store.lookup(canonical);
      if (local) return local;
      if (policy === 'Never') {
        throw new ImagePullError(
          `image ${canonical} is not on this node and imagePullPolicy is Never; pull it first (acetate image pull, or image import)`,
          'ErrImageNeverPull',
        );
      }
    }
    return this.remote(canonical);
  }

  /** The registry's digest now, shared by concurrent and recent callers. */
  private remote(ref: string): Promise<string> {
    const hit = this.cache.get(ref);
    if (hit && this.now() - hit.at < this.cacheMs) return hit.digest;
    const digest = this.store.skopeo.resolveDigest(ref);
    this.cache.set(ref, { at: this.now(), digest });
    digest.catch(() => this.cache.delete(ref)); // failures are not remembered: the back-off decides
    return digest;
  }
}
