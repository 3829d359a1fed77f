/**
 * The freshest copy of each Container object that acetate knows, for its writes (status,
 * finalizers): the informer's copy, unless acetate's own last write (or re-read) is newer than
 * what the watch has delivered so far. Without it, a finalizer patch followed by a status write
 * in the same reconcile would conflict with itself.
 *
 * After a 409 the key is marked stale: the next current() reads the object from the API server
 * (the informer may be behind too), so the retry the queue makes at once writes on the latest
 * resourceVersion.
 */
import type { KubeApi, KubeContainer } from './client.js';
import { kubeFailure } from './api-failure.js';

interface Known {
  obj: KubeContainer;
  /** The informer's resourceVersion when obj was recorded: obj wins while the informer is there. */
  basis: string | undefined;
}

export class LatestObjects {
  private readonly known = new Map<string, Known>();
  private readonly stale = new Set<string>();

  constructor(
    private readonly api: KubeApi,
    /** The informer's copy of the object for a key. */
    private readonly lookup: (key: string) => KubeContainer | undefined,
  ) {}

  /** The freshest copy known without asking the API server; undefined when the informer has none. */
  get(key: string): KubeContainer | undefined {
    const cached = this.lookup(key);
    if (!cached) return undefined;
    const k = this.known.get(key);
    if (k && k.obj.metadata.uid === cached.metadata.uid && k.basis === cached.metadata.resourceVersion) return k.obj;
    return cached;
  }

  /** The freshest copy, read from the API server first when a write lost a race. Throws typed failures. */
  async current(key: string): Promise<KubeContainer | undefined> {
    const obj = this.get(key);
    if (!obj || !this.stale.has(key)) return obj;
    const { namespace = 'default', name } = obj.metadata;
    let fresh: KubeContainer | undefined;
    try {
      fresh = await this.api.getContainer(namespace, name);
    } catch (err) {
      throw kubeFailure(err, `cannot read container ${key} again`);
    }
    this.stale.delete(key);
    if (fresh) this.record(key, fresh);
    return fresh;
  }

  /** Remembers the object a write (or read) returned. */
  record(key: string, obj: KubeContainer): void {
    this.known.set(key, { obj, basis: this.lookup(key)?.metadata.resourceVersion });
  }

  /** A write of key got a 409: re-read before the next one. */
  markStale(key: string): void {
    this.stale.add(key);
  }

  forget(key: string): void {
    this.known.delete(key);
    this.stale.delete(key);
  }
}
