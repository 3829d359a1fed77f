/**
 * The `acetate.dev/cleanup` finalizer.
 *
 * - Added when this node first takes a Container (any object naming this node, valid or not,
 *   not being deleted). Until it is there the key is protected: no container is created for an
 *   object that could disappear without acetate seeing it.
 * - When the object gets a deletionTimestamp it is no longer desired, so the loop destroys its
 *   container; once the container is gone the finalizer is removed and the API server deletes the
 *   object. "Gone" is learnt from the loop (converged(key, { actualExists: false })) or by asking
 *   the runtime (actualExists callback) on every change of the object and on a periodic sweep.
 *
 * Both patches are JSON merge patches carrying metadata.resourceVersion, so a concurrent change
 * of the finalizer list is a 409 Conflict (re-read, decide again), never a lost finalizer.
 *
 * An object whose node never comes back keeps its finalizer; remove it by hand:
 *   kubectl patch container NAME --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'
 */
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { realClock } from '../../contracts/clock.js';
import { KubeApiError, type KubeApi, type KubeContainer } from './client.js';
import { FINALIZER } from './constants.js';
import { keyOfObject } from './informer.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';

export function hasFinalizer(obj: KubeContainer): boolean {
  return (obj.metadata.finalizers ?? []).includes(FINALIZER);
}

export interface FinalizerOptions {
  api: KubeApi;
  /** The informer's copy of the object. */
  lookup: (key: string) => KubeContainer | undefined;
  /** Whether the runtime still has a container for key; throws when it cannot tell. */
  actualExists?: (key: string) => Promise<boolean>;
  /** Called when something about a key changed (an add failed or recovered). */
  onChange?: (key: string) => void;
  clock?: Clock;
  logger?: Logger;
  /** Retry backoff after a failed patch: base default 1 s, max default 60 s. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** How often terminating objects are checked against the runtime; default 5 s, 0 = never. */
  sweepIntervalMs?: number;
}

interface KeyState {
  busy: boolean;
  again: boolean;
  failures: number;
  retry?: TimerHandle;
  /** Why the last add failed, shown as a source problem. */
  addError?: string;
}

export class FinalizerManager {
  readonly stats = { added: 0, removed: 0, conflicts: 0, failures: 0 };
  private readonly states = new Map<string, KeyState>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private sweepTimer?: TimerHandle;
  private stopped = false;
  private inflight = new Set<Promise<void>>();

  constructor(private readonly opts: FinalizerOptions) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
  }

  start(): void {
    this.stopped = false;
    this.scheduleSweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) this.clock.clearTimeout(this.sweepTimer);
    for (const st of this.states.values()) if (st.retry) this.clock.clearTimeout(st.retry);
    await Promise.all([...this.inflight]);
  }

  /** Why adding the finalizer to key failed last, if it did. */
  addError(key: string): string | undefined {
    return this.states.get(key)?.addError;
  }

  /** Looks at an object after it changed: adds the finalizer, or removes it when the container is gone. */
  observe(obj: KubeContainer): void {
    const key = keyOfObject(obj);
    if (obj.metadata.deletionTimestamp ? hasFinalizer(obj) : !hasFinalizer(obj)) this.run(key);
  }

  /** The loop reconciled key; when the object is terminating and actual is absent, the finalizer goes. */
  converged(key: string, state: { actualExists: boolean }): void {
    const obj = this.opts.lookup(key);
    if (!obj?.metadata.deletionTimestamp || !hasFinalizer(obj) || state.actualExists) return;
    this.run(key, true);
  }

  /** Forgets a key whose object is gone. */
  forget(key: string): void {
    const st = this.states.get(key);
    if (st?.retry) this.clock.clearTimeout(st.retry);
    if (st && !st.busy) this.states.delete(key);
  }

  /** Resolves when no patch is in flight. */
  async flush(): Promise<void> {
    while (this.inflight.size) await Promise.all([...this.inflight]);
  }

  // ------------------------------------------------------------------ internals

  private scheduleSweep(): void {
    const every = this.opts.sweepIntervalMs ?? 5000;
    if (!every || this.stopped || !this.opts.actualExists) return;
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      if (this.stopped) return;
      this.sweep();
      this.scheduleSweep();
    }, every);
  }

  /** Checks every terminating object still carrying the finalizer (keys known from past observe calls). */
  sweep(): void {
    for (const key of [...this.states.keys()]) {
      const obj = this.opts.lookup(key);
      if (obj?.metadata.deletionTimestamp && hasFinalizer(obj)) this.run(key);
    }
  }

  private state(key: string): KeyState {
    let st = this.states.get(key);
    if (!st) {
      st = { busy: false, again: false, failures: 0 };
      this.states.set(key, st);
    }
    return st;
  }

  private run(key: string, gone = false): void {
    if (this.stopped) return;
    const st = this.state(key);
    if (st.busy) {
      st.again = true;
      return;
    }
    if (st.retry) return; // a retry is scheduled; it reads the latest object
    st.busy = true;
    const p = this.step(key, st, gone)
      .catch((err: unknown) => {
        this.log.error(`finalizer handling of ${key} failed: ${(err as Error).stack ?? String(err)}`);
      })
      .finally(() => {
        st.busy = false;
        this.inflight.delete(p);
        if (st.again && !this.stopped) {
          st.again = false;
          this.run(key);
        } else if (!this.opts.lookup(key)) this.forget(key);
      });
    this.inflight.add(p);
  }

  private async step(key: string, st: KeyState, knownGone: boolean): Promise<void> {
    let obj = this.opts.lookup(key);
    for (let attempt = 0; obj && attempt < 5 && !this.stopped; attempt++) {
      const terminating = Boolean(obj.metadata.deletionTimestamp);
      if (terminating && !hasFinalizer(obj)) return;
      if (!terminating && hasFinalizer(obj)) return this.ok(key, st);
      if (terminating) {
        let exists = !knownGone;
        if (!knownGone) {
          if (!this.opts.actualExists) return; // wait for the loop's converged() call
          try {
            exists = await this.opts.actualExists(key);
          } catch (err) {
            this.log.warn(`cannot tell whether container ${key} still exists (${(err as Error).message}); keeping its finalizer`);
            return;
          }
        }
        if (exists) return;
      }
      const finalizers = obj.metadata.finalizers ?? [];
      const next = terminating ? finalizers.filter((f) => f !== FINALIZER) : [...finalizers, FINALIZER];
      const { namespace = 'default', name } = obj.metadata;
      try {
        await this.opts.api.patchContainer(namespace, name, { metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: next } }, 'merge');
        if (terminating) {
          this.stats.removed += 1;
          this.log.info(`container ${key} is gone; removed finalizer ${FINALIZER} so the object can be deleted`);
        } else {
          this.stats.added += 1;
          this.log.debug(`added finalizer ${FINALIZER} to ${key}`);
        }
        return this.ok(key, st);
      } catch (err) {
        const e = err instanceof KubeApiError ? err : new KubeApiError(0, 'Unknown', String(err));
        if (e.code === 404) return;
        if (e.code === 409 || (e.code === 422 && !terminating)) {
          // changed meanwhile (or deletion started: no new finalizers): read again and decide again
          this.stats.conflicts += 1;
          try {
            obj = await this.opts.api.getContainer(namespace, name);
          } catch (getErr) {
            return this.fail(key, st, terminating, getErr as Error);
          }
          continue;
        }
        return this.fail(key, st, terminating, e);
      }
    }
  }

  private ok(key: string, st: KeyState): void {
    st.failures = 0;
    if (st.addError !== undefined) {
      st.addError = undefined;
      this.opts.onChange?.(key);
    }
  }

  private fail(key: string, st: KeyState, removing: boolean, err: Error): void {
    this.stats.failures += 1;
    st.failures += 1;
    const base = this.opts.backoff?.baseMs ?? 1000;
    const max = this.opts.backoff?.maxMs ?? 60_000;
    const wait = Math.min(max, base * 2 ** Math.min(st.failures - 1, 20));
    const what = removing ? `remove finalizer ${FINALIZER} from` : `add finalizer ${FINALIZER} to`;
    this.log.warn(`cannot ${what} ${key} (${err.message}); retrying in ${wait} ms`);
    if (!removing) {
      const msg = `cannot add finalizer ${FINALIZER}: ${err.message}; the container is left as it is until it can`;
      if (st.addError !== msg) {
        st.addError = msg;
        this.opts.onChange?.(key);
      }
    }
    st.retry = this.clock.setTimeout(() => {
      st.retry = undefined;
      this.run(key);
    }, wait);
  }
}
