/**
 * A list-then-watch cache of this node's Container objects, written for acetate's safety rule:
 * a lost watch or a restart never destroys a container.
 *
 * - list (a fresh, quorum read: no resourceVersion), then watch from the list's resourceVersion
 *   with allowWatchBookmarks; BOOKMARKs only advance the resourceVersion.
 * - a watch that ends (server timeout, dropped connection) resumes from the last resourceVersion
 *   seen, after a backoff when it failed or ended at once; the cache stays complete meanwhile.
 * - 410 Gone (HTTP 410, or an ERROR event with a Status of code 410 / reason Expired) means the
 *   history is gone: the cache is marked incomplete and a full list replaces it. complete() is
 *   false from the 410 until that list succeeds, so nothing is destroyed on a stale view.
 * - every failure is logged with what is retried and when; lastError() keeps the latest.
 * - resync: every resyncIntervalMs the cache is replayed to listeners (no API call);
 *   relistIntervalMs (off by default) also re-lists periodically.
 * - a watch silent for longer than its timeout plus a grace period is abandoned and resumed (a
 *   half-open TCP connection never ends by itself).
 *
 * We do not use the client's ListWatch/makeInformer: in @kubernetes/client-node 1.4 it does not
 * ask for bookmarks, stops for good on any error other than 410, has no backoff and no notion of
 * "complete", and its list errors only reach an error callback.
 */
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { realClock } from '../../contracts/clock.js';

import { backoffDelay } from '../../util/backoff.js';
import { Periodic } from '../../util/periodic.js';
import { KubeApiError, type KubeApi, type KubeContainer } from './client.js';
import { watchOnce, type WatchEnd } from './watch-once.js';
import { InformerCache } from './informer-cache.js';
import type { InformerEvent, InformerOptions, InformerStats } from './informer-types.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import { describeSelector, labelValueProblem, listForNode, selectorFor, type EffectiveSelector, type SelectorMode } from './node-selector.js';

export class ContainerInformer {
  readonly stats: InformerStats = { lists: 0, listFailures: 0, watches: 0, watchFailures: 0, gone: 0, bookmarks: 0, events: 0 };
  private readonly api: KubeApi;
  private readonly node: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly mode: SelectorMode;
  private effective: EffectiveSelector | undefined;
  private readonly cache = new InformerCache();
  private isComplete = false;
  private hasSynced = false;
  private needList = true;
  private failures = 0;
  private stopped = true;
  private loop?: Promise<void>;
  private listeners: ((e: InformerEvent) => void)[] = [];
  private abortWatch?: () => void;
  private wake?: () => void;
  private sleepTimer?: TimerHandle;
  private periodic: Periodic[] = [];
  private error: KubeApiError | undefined;
  private syncWaiters: (() => void)[] = [];

  constructor(private readonly opts: InformerOptions) {
    this.api = opts.api;
    this.node = opts.node;
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
    this.random = opts.random ?? Math.random;
    this.mode = opts.selector ?? 'auto';
    if (this.mode !== 'auto') this.effective = this.mode;
  }

  on(listener: (e: InformerEvent) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    if (!this.stopped) return;
    if (this.mode === 'label') {
      const p = labelValueProblem(this.node);
      if (p) throw new Error(`${p}; use the field selector (Kubernetes ≥ 1.31)`);
    }
    this.stopped = false;
    // resync: replay the cache to listeners (no API call); re-list: a fresh list (off by default).
    const resync = (): Promise<void> => {
      if (this.hasSynced) this.emit({ kind: 'resync' });
      return Promise.resolve();
    };
    const relist = (): Promise<void> => {
      this.log.debug('kube informer: periodic re-list');
      this.needList = true;
      this.abortWatch?.();
      return Promise.resolve();
    };
    const onError = (err: unknown): void => {
      this.log.error(`kube informer timer failed: ${String(err)}`);
    };
    this.periodic = [
      new Periodic({ clock: this.clock, ms: this.opts.resyncIntervalMs ?? 5 * 60_000, run: resync, onError }),
      new Periodic({ clock: this.clock, ms: this.opts.relistIntervalMs ?? 0, run: relist, onError }),
    ];
    for (const p of this.periodic) p.start();
    this.loop = this.run().catch((err) => {
      this.log.error(`kube informer stopped on an unexpected error: ${(err as Error).stack ?? String(err)}`);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const p of this.periodic) p.cancel();
    if (this.sleepTimer) this.clock.clearTimeout(this.sleepTimer);
    this.abortWatch?.();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    for (const w of this.syncWaiters.splice(0)) w(); // nobody waits forever for a stopped informer
  }

  /** True while the cache is a complete view: after a list, until a 410 forces a new one. */
  complete(): boolean {
    return this.isComplete;
  }

  /** True once the first list succeeded. */
  synced(): boolean {
    return this.hasSynced;
  }

  /** Resolves at the first complete list (or when stopped; check synced()). */
  waitForSync(): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): KubeContainer | undefined {
    return this.cache.get(key);
  }

  list(): KubeContainer[] {
    return this.cache.list();
  }

  keys(): string[] {
    return this.cache.keys();
  }

  resourceVersion(): string {
    return this.cache.resourceVersion();
  }

  /** The server-side selector in use ('field' or 'label'); undefined before the first list in auto mode. */
  selectorInUse(): EffectiveSelector | undefined {
    return this.effective;
  }

  /** The last failure talking to the API server, cleared by the next successful list or watch event. */
  lastError(): KubeApiError | undefined {
    return this.error;
  }

  // ------------------------------------------------------------------ internals

  private emit(e: InformerEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.log.error(`kube informer listener failed: ${(err as Error).stack ?? String(err)}`);
      }
    }
  }

  private setComplete(v: boolean): void {
    if (this.isComplete === v) return;
    this.isComplete = v;
    this.emit({ kind: 'complete', complete: v });
  }

  /** The reconnect schedule: the shared exponential backoff, with jitter so nodes do not reconnect in step. */
  private backoffMs(): number {
    return backoffDelay(this.failures, {
      baseMs: this.opts.backoff?.baseMs ?? 1000,
      maxMs: this.opts.backoff?.maxMs ?? 30_000,
      jitter: 0.25,
      random: this.random,
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.sleepTimer) this.clock.clearTimeout(this.sleepTimer);
        this.sleepTimer = undefined;
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.sleepTimer = this.clock.setTimeout(done, ms);
    });
  }

  private watchTimeoutSeconds(): number {
    return this.opts.watchTimeoutSeconds ?? Math.round(300 * (1 + this.random()));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.needList) {
        try {
          await this.doList();
          this.failures = 0;
        } catch (err) {
          if (this.stopped) break;
          const e = err instanceof KubeApiError ? err : new KubeApiError(0, 'Unknown', String(err));
          this.error = e;
          this.stats.listFailures += 1;
          this.failures += 1;
          const wait = this.backoffMs();
          this.log.warn(
            `cannot list Containers for node ${this.node} (${e.message}); ${this.hasSynced ? 'keeping the last view, marked incomplete: nothing is destroyed' : 'nothing is created or destroyed'} until a list succeeds; retrying in ${wait} ms`,
            { code: e.code, reason: e.reason, attempt: this.failures },
          );
          await this.sleep(wait);
          continue;
        }
      }
      if (this.stopped) break;
      const end = await this.watch();
      if (this.stopped) break;
      switch (end.kind) {
        case 'gone':
          this.stats.gone += 1;
          this.log.info(`watch of Containers expired (410: ${end.message}); re-listing, nothing is destroyed until the list completes`);
          this.needList = true;
          this.setComplete(false);
          break;
        case 'closed':
          if (end.events === 0 && end.ms < 1000) {
            this.failures += 1;
            const wait = this.backoffMs();
            this.log.debug(`watch of Containers ended at once; resuming from resourceVersion ${this.cache.resourceVersion()} in ${wait} ms`);
            await this.sleep(wait);
          } else {
            this.failures = 0;
            this.log.debug(`watch of Containers ended after ${end.events} events; resuming from resourceVersion ${this.cache.resourceVersion()}`);
          }
          break;
        case 'error': {
          this.stats.watchFailures += 1;
          this.error = end.err;
          this.failures += 1;
          const wait = this.backoffMs();
          this.log.warn(`watch of Containers failed (${end.err.message}); resuming from resourceVersion ${this.cache.resourceVersion()} in ${wait} ms`, {
            code: end.err.code,
            reason: end.err.reason,
            attempt: this.failures,
          });
          await this.sleep(wait);
          break;
        }
        case 'aborted':
          break;
      }
    }
  }

  private async doList(): Promise<void> {
    const { res, mode } = await listForNode({ api: this.api, node: this.node, mode: this.mode, effective: this.effective, logger: this.log });
    if (this.stopped) return;
    if (this.effective === undefined) {
      this.effective = mode;
      this.log.info(`watching Containers for node ${this.node} with the ${describeSelector(mode, this.node)}`);
    }
    this.stats.lists += 1;
    const keys = this.cache.replace(res.items, res.resourceVersion);
    this.needList = false;
    this.error = undefined;
    const first = !this.hasSynced;
    this.hasSynced = true;
    this.setComplete(true);
    this.log.debug(`listed ${this.cache.size} Containers for node ${this.node} at resourceVersion ${this.cache.resourceVersion()}`);
    this.emit({ kind: 'relisted', keys });
    if (first) for (const w of this.syncWaiters.splice(0)) w();
  }

  private watch(): Promise<WatchEnd> {
    const timeoutSeconds = this.watchTimeoutSeconds();
    this.stats.watches += 1;
    return watchOnce({
      api: this.api,
      clock: this.clock,
      selector: selectorFor(this.effective ?? 'field', this.node),
      resourceVersion: this.cache.resourceVersion(),
      timeoutSeconds,
      idleMs: this.opts.idleTimeoutMs ?? timeoutSeconds * 1000 + 60_000,
      setAbort: (abort) => (this.abortWatch = abort),
      onEvent: (type, obj) => this.apply(type, obj),
      onMalformed: (type) => this.log.warn(`ignoring a malformed ${type} watch event`),
      stopped: () => this.stopped,
    });
  }

  /** One decoded watch event into the cache. */
  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK', obj: KubeContainer): void {
    const change = this.cache.apply(type, obj);
    if (!change) {
      this.stats.bookmarks += 1;
      return;
    }
    this.stats.events += 1;
    this.error = undefined;
    this.emit(change);
  }
}
