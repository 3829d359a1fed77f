/**
 * The `acetate.dev/cleanup` finalizer, written as a step of the loop's reconcile (a
 * DetailedStatusSink, registered before the status writer):
 *
 * - publish (the loop reconciled the key): an object of this node that is not being deleted gets
 *   the finalizer. Until it is there the key is protected: no container is created for an object
 *   that could disappear without acetate seeing it.
 * - remove (the loop found neither a desired nor an actual container for the key): an object
 *   being deleted loses the finalizer, and the API server deletes it. Its container is gone then.
 *
 * Both patches are JSON merge patches carrying metadata.resourceVersion, so a concurrent change
 * of the finalizer list is a 409 (ConflictError: the queue re-runs the reconcile at once on a
 * re-read object), never a lost finalizer. One attempt per call, failures thrown typed (see
 * api-failure.ts); no timer and no retry state here.
 *
 * An object whose node never comes back keeps its finalizer; remove it by hand:
 *   kubectl patch container NAME --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'
 */
import type { ContainerStatus } from '../../api/types.js';
import { ConflictError, failureKind, messageOf } from '../../contracts/errors.js';
import type { DetailedStatusSink } from '../../contracts/sinks.js';
import type { StatusRecord } from '../../contracts/status-record.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import type { KubeApi, KubeContainer } from './client.js';
import { FINALIZER } from './constants.js';
import { kubeFailure } from './api-failure.js';
import type { LatestObjects } from './latest-objects.js';

export function hasFinalizer(obj: KubeContainer): boolean {
  return (obj.metadata.finalizers ?? []).includes(FINALIZER);
}

export interface FinalizerOptions {
  api: KubeApi;
  /** The freshest copies of the objects (shared with the status writer). */
  objects: LatestObjects;
  /** Whether the object is this node's to take (not another node's, even when invalid). */
  isOurs: (obj: KubeContainer) => boolean;
  /** Called when whether adding the finalizer to key fails changed (it is a problem of the key). */
  onAddErrorChange?: (key: string) => void;
  logger?: Logger;
}

export class FinalizerWriter implements DetailedStatusSink {
  readonly stats = { added: 0, removed: 0, conflicts: 0, failures: 0 };
  /** Why adding the finalizer failed last, per key, shown as a source problem. */
  private readonly addErrors = new Map<string, string>();
  private readonly log: Logger;

  constructor(private readonly opts: FinalizerOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  /** Why adding the finalizer to key failed last, if it did. */
  addError(key: string): string | undefined {
    return this.addErrors.get(key);
  }

  /** The loop reconciled key: an object of this node not being deleted gets the finalizer. */
  async publish(key: string, _status?: ContainerStatus): Promise<void> {
    const cached = this.opts.objects.get(key);
    if (!cached || !this.opts.isOurs(cached) || cached.metadata.deletionTimestamp || hasFinalizer(cached)) return;
    try {
      const obj = await this.opts.objects.current(key);
      if (!obj || obj.metadata.deletionTimestamp || hasFinalizer(obj)) return;
      await this.patch(key, obj, [...(obj.metadata.finalizers ?? []), FINALIZER]);
      this.stats.added += 1;
      this.log.debug(`added finalizer ${FINALIZER} to ${key}`);
      this.setAddError(key, undefined);
    } catch (err) {
      // Raced (retried at once) or deleted: not a problem of the key.
      if (failureKind(err) === 'conflict' || failureKind(err) === 'gone') throw err;
      this.setAddError(key, `cannot add finalizer ${FINALIZER}: ${messageOf(err)}; the container is left as it is until it can`);
      throw err;
    }
  }

  publishDetailed(record: StatusRecord): Promise<void> {
    return this.publish(record.key);
  }

  /** The loop found neither desired nor actual for key: a terminating object's finalizer goes. */
  async remove(key: string): Promise<void> {
    const cached = this.opts.objects.get(key);
    if (!cached?.metadata.deletionTimestamp || !hasFinalizer(cached)) return;
    const obj = await this.opts.objects.current(key);
    if (!obj?.metadata.deletionTimestamp || !hasFinalizer(obj)) return;
    await this.patch(
      key,
      obj,
      (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
    );
    this.stats.removed += 1;
    this.log.info(`container ${key} is gone; removed finalizer ${FINALIZER} so the object can be deleted`);
  }

  /** Forgets a key whose object is gone. */
  forget(key: string): void {
    this.addErrors.delete(key);
  }

  private async patch(key: string, obj: KubeContainer, finalizers: string[]): Promise<void> {
    const { namespace = 'default', name, resourceVersion } = obj.metadata;
    const adding = !obj.metadata.deletionTimestamp;
    try {
      this.opts.objects.record(key, await this.opts.api.patchContainer(namespace, name, { metadata: { resourceVersion, finalizers } }, 'merge'));
    } catch (err) {
      const what = adding ? `cannot add finalizer ${FINALIZER} to ${key}` : `cannot remove finalizer ${FINALIZER} from ${key}`;
      let failure = kubeFailure(err, what);
      // A 422 on adding: the deletion started meanwhile (no new finalizers then); decide again.
      if (adding && failure.kind === 'invalid') failure = new ConflictError(`${what}: the object changed (${failure.message})`, { cause: failure });
      if (failure.kind === 'conflict') {
        this.stats.conflicts += 1;
        this.opts.objects.markStale(key);
      } else if (failure.kind !== 'gone') {
        this.stats.failures += 1;
        this.log.warn(failure.message, { kind: failure.kind });
      }
      throw failure;
    }
  }

  private setAddError(key: string, message: string | undefined): void {
    const had = this.addErrors.has(key);
    if (message === undefined) this.addErrors.delete(key);
    else this.addErrors.set(key, message);
    // Only a change between "fails" and "works" is news for the loop: a message that differs from
    // one attempt to the next must not wake the key at once (that would skip its backoff).
    if (had !== (message !== undefined)) this.opts.onAddErrorChange?.(key);
  }
}
