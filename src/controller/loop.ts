/**
 * The continuous reconcile loop (`acetate run`), level-triggered like controller-runtime. This
 * file drives the queue; what is done with a key is reconcile.ts.
 *
 * - Events only enqueue keys: a source says which keys may have changed, a periodic resync
 *   enqueues every desired and every actual key (drift repair), a light process poll enqueues the
 *   keys whose process changed, delayed retries come due.
 * - A worker takes a key, reconciles it (read → decide → execute → publish) and hands the
 *   reconcile's Requeue to the queue: WorkQueue.done alone decides when the key comes back.
 * - stop(): no new work is taken, in-flight actions finish. Containers keep running: a new loop
 *   adopts them (converged → no actions), and takes up the crash-loop streaks the status records
 *   carry.
 */
import os from 'node:os';
import type { ProcessWatch, Runtime } from '../runtime/runtime.js';
import type { DesiredSource } from '../contracts/source.js';
import { messageOf } from '../contracts/errors.js';
import { WorkQueue } from './queue.js';
import type { Requeue } from './requeue.js';
import { realClock, type Clock } from '../contracts/clock.js';
import { Periodic } from '../util/periodic.js';
import { CrashLoopTracker } from './crashloop.js';
import { mergeSnapshots, type MergedSnapshot } from './merge-sources.js';
import { silentLogger, type Logger } from '../contracts/logger.js';
import { Prober } from './probes/prober.js';
import { probeTools } from './probes/tools.js';
import { ImageResolver } from '../images/resolver.js';
import { Reconciler, type ReconcileReport } from './reconcile.js';
import { StatusPublisher } from './publish.js';
import { Notices } from './notices.js';
import { ProblemLog } from './problem-log.js';
import { ProcessPoll } from './process-poll.js';
import { collectLoopMetrics } from './loop-metrics.js';
import type { ControllerOptions } from './loop-options.js';

export type { PlanFn, ReconcileReport } from './reconcile.js';

/**
 * The full resync's default period. Exits are events (runtime.watchProcesses) and a lost
 * supervisor is found by the light poll, so the resync is the safety net for what no event tells
 * (runc's state removed by hand, limits changed with `runc update`): a pass over every container
 * costs ~0.5-1 ms of CPU each, so every 30 s it alone cost ~30 ms/s at 2,500 containers.
 */
export const DEFAULT_RESYNC_MS = 300_000;

/** Action kinds after which host ports may be free (see wakePortWaiters). */
const FREES_PORTS = new Set<string>(['ports', 'network', 'destroy', 'replace']);
export type { ExecuteFn } from './run-actions.js';
export type { ControllerOptions } from './loop-options.js';

export class Controller {
  readonly queue: WorkQueue;
  readonly crashLoop: CrashLoopTracker;
  /** Startup, readiness and liveness probes, on timers of their own; results enqueue keys. */
  readonly prober: Prober;
  private readonly runtime: Runtime;
  private readonly sources: DesiredSource[];
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly resyncMs: number;
  private readonly processPollMs: number;
  private readonly publisher: StatusPublisher;
  private readonly reconciler: Reconciler;
  private readonly problems: ProblemLog;
  private readonly poll = new ProcessPoll();
  /** Exits as events (runtime.watchProcesses), when the runtime has them: see pollProcesses. */
  private watch?: ProcessWatch;
  private hostViewWatch?: { close(): void };
  /** The host-view watcher's failures by key, shown as the HostViewCurrent condition (status.ts). */
  private readonly hostViewProblems = new Map<string, string>();
  /** The light poll of process states, every processPollMs. */
  private readonly pollTask: Periodic;
  private merged?: MergedSnapshot;
  /** bridgeKeys() of the merged snapshot it was computed from (the poll asks every period). */
  private bridge?: { of: MergedSnapshot; keys: string[] };
  private workers: Promise<void>[] = [];
  /** The full resync (resyncMs). */
  private readonly resyncTask: Periodic;
  private isRunning = false;
  private isReady = false;
  /** The first sync reconciled the declared containers only (the node's could not be listed). */
  private firstSyncPartial = false;
  private initialPending?: Set<string>;
  private stopping?: Promise<void>;
  /** Keys whose last reconcile failed on a host port another container published (PortConflict). */
  private readonly waitingForPorts = new Set<string>();

  constructor(private readonly opts: ControllerOptions) {
    // Every read of a container by the loop also feeds the observed view, when there is one.
    this.runtime = opts.observed ? opts.observed.wrap(opts.runtime) : opts.runtime;
    this.sources = opts.sources;
    this.clock = opts.clock ?? realClock;
    this.logger = opts.logger ?? silentLogger;
    const sinks = [...(opts.statusSinks ?? [])];
    if (opts.statusStore && !sinks.includes(opts.statusStore)) sinks.push(opts.statusStore);
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.resyncMs = opts.resyncMs ?? DEFAULT_RESYNC_MS;
    this.processPollMs = opts.processPollMs ?? 2_000;
    this.queue = new WorkQueue({ clock: this.clock, backoff: opts.backoff });
    this.resyncTask = new Periodic({
      clock: this.clock,
      ms: this.resyncMs,
      run: () => this.resync(),
      onError: (err) => this.logger.warn('resync failed', { error: messageOf(err) }),
    });
    this.pollTask = new Periodic({
      clock: this.clock,
      ms: this.processPollMs,
      run: () => this.pollProcesses(),
      onError: (err) => this.logger.debug('process poll failed', { error: messageOf(err) }),
    });
    this.crashLoop = new CrashLoopTracker(opts.crashLoop, this.clock);
    this.prober = new Prober({
      runtime: this.runtime,
      clock: this.clock,
      concurrency: opts.probeConcurrency,
      tools: probeTools,
      onChange: (key) => this.queue.add(key, 'change'),
    });
    this.publisher = new StatusPublisher(sinks, { nodeName: opts.nodeName ?? os.hostname(), now: () => this.clock.now(), logger: this.logger });
    this.problems = new ProblemLog({ logger: this.logger, ...(opts.statusStore ? { store: opts.statusStore } : {}) });
    const images = opts.runtime.images;
    this.reconciler = new Reconciler({
      runtime: this.runtime,
      plan: opts.plan,
      execute: opts.execute,
      clock: this.clock,
      logger: this.logger,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      crashLoop: this.crashLoop,
      publisher: this.publisher,
      notices: new Notices(opts.recorders ?? [], this.logger),
      queue: this.queue,
      prober: this.prober,
      hostViewProblems: this.hostViewProblems,
      ...(images
        ? {
            imageResolver: new ImageResolver(images, {
              now: () => this.clock.now(),
              ...(opts.imageResolveCacheMs !== undefined ? { cacheMs: opts.imageResolveCacheMs } : {}),
            }),
          }
        : {}),
      deferredRetryMs: opts.deferredRetryMs ?? 15_000,
      snapshot: () => this.snapshot(),
    });
    const metrics = opts.metrics;
    metrics?.addCollector(() =>
      collectLoopMetrics(metrics, {
        queue: this.queue,
        phases: this.publisher.phases(),
        statuses: this.publisher.allStatuses(),
        snapshot: this.snapshot(),
        ready: this.isReady,
      }),
    );
  }

  /** Reconciles done (for tests). */
  get reconcileCount(): number {
    return this.reconciler.count;
  }

  /** True from start() until stop(). */
  healthy(): boolean {
    return this.isRunning;
  }

  /** True after every source's first full sync and one reconcile of every key known then. */
  ready(): boolean {
    return this.isReady;
  }

  /** Starts the sources, the workers and the periodic resync. Resolves once the first sync is queued. */
  async start(): Promise<void> {
    if (this.isRunning) return;
    this.isRunning = true;
    if (this.opts.statusStore) {
      const records = await this.opts.statusStore.load().catch(() => []);
      this.publisher.seed(records);
      for (const r of records) if (r.crashLoop) this.crashLoop.seed(r.key, r.crashLoop);
    }
    await Promise.all(this.sources.map((s) => s.start((keys) => this.onSourceChange(s, keys))));
    // Before the first sync: every reconcile tracks its key from then on.
    this.watch = this.runtime.watchProcesses?.((key) => {
      if (this.queue.isShuttingDown) return;
      this.queue.add(key, 'resync');
      this.observeAgain(key);
    });
    // Host-template containers' view of the node kept current while this loop runs (not after it).
    this.hostViewWatch = this.runtime.watchHostView?.(
      (err) => this.logger.warn('host view update failed', { error: messageOf(err) }),
      (key, problem) => {
        if (problem === this.hostViewProblems.get(key)) return;
        if (problem === undefined) this.hostViewProblems.delete(key);
        else this.hostViewProblems.set(key, problem);
        if (!this.queue.isShuttingDown) this.queue.add(key, 'resync'); // its status says so
      },
    );
    this.merged = undefined;
    this.problems.refresh(this.snapshot());
    for (let i = 0; i < this.concurrency; i++) this.workers.push(this.worker());
    // First full sync: every desired and every actual key, once, before we call ourselves ready.
    const keys = await this.allKeys().catch((err: unknown) => {
      this.logger.error('cannot list containers for the first sync', { error: messageOf(err) });
      this.firstSyncPartial = true;
      return [...this.snapshot().containers.keys()];
    });
    this.logger.info('loop started', { sources: this.sources.map((s) => s.name), concurrency: this.concurrency, resyncMs: this.resyncMs, keys: keys.length });
    this.initialPending = new Set(keys);
    for (const k of keys) this.queue.add(k, 'change');
    this.checkReady();
    this.resyncTask.start();
    this.pollTask.start();
  }

  /** Stops taking work, lets in-flight reconciles finish, stops the sources. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('stopping: finishing in-flight work', { inFlight: this.queue.processingCount() });
      this.opts.observed?.close(); // no more reads: get and plan read the node from now on
      this.resyncTask.cancel();
      this.pollTask.cancel();
      this.queue.shutdown();
      // Registry requests in flight are killed, not waited for: a registry that hangs must not
      // hold the stop past its grace period (the next loop resolves and pulls again).
      this.runtime.images?.skopeo.abortAll('acetate is stopping; asked again by the next acetate run');
      // Checks in flight are aborted (their processes killed), not waited for to their timeoutSeconds.
      const probes = this.prober.stop();
      await Promise.all(this.workers);
      await probes;
      await this.resyncTask.settled();
      await this.pollTask.settled();
      this.watch?.close();
      this.hostViewWatch?.close();
      await Promise.all(this.sources.map((s) => s.stop().catch(() => undefined)));
      await this.opts.statusStore?.flush().catch(() => undefined);
      this.isRunning = false;
      this.logger.info('stopped');
    })();
    return this.stopping;
  }

  /** The merged desired state of every source (cached until a source reports a change). */
  snapshot(): MergedSnapshot {
    this.merged ??= mergeSnapshots(this.sources.map((s) => ({ source: s.name, snapshot: s.snapshot() })));
    return this.merged;
  }

  /** Reconciles one key now (the workers' step; for tests and callers). Never throws. */
  reconcile(key: string): Promise<ReconcileReport> {
    return this.reconciler.reconcile(key);
  }

  /** Enqueues every desired and every actual key now (what the periodic resync does). */
  async resync(): Promise<void> {
    if (this.queue.isShuttingDown) return;
    this.opts.metrics?.resyncs.inc();
    this.merged = undefined;
    const keys = await this.allKeys();
    for (const k of keys) this.queue.add(k, 'resync');
    // Statuses of keys that exist nowhere any more: their reconcile removes them from the sinks
    // (a change of the key: it wakes a key parked on a terminal error too).
    const known = new Set(keys);
    for (const k of this.publisher.keys()) if (!known.has(k)) this.queue.add(k, 'change');
  }

  /**
   * Enqueues the keys whose process changed since the last poll (a PLEG-like relist). With a
   * runtime that reports exits as events (watchProcesses), the poll only does what no event does:
   * a liveness sweep of the running containers' processes and supervisors (a syscall each), and
   * the relist of the `network: bridge` containers alone (a veth or a port rule deleted by hand).
   * Without, it relists every container.
   */
  async pollProcesses(): Promise<string[]> {
    if (this.queue.isShuttingDown) return [];
    const changed = new Set(this.watch?.sweep() ?? []);
    const keys = this.watch ? this.bridgeKeys() : undefined;
    // The sweep's news of a container the list below does not read (no bridge) reaches the observed view now.
    if (keys) for (const k of changed) if (!keys.includes(k)) this.observeAgain(k);
    if (!keys || keys.length) for (const k of this.poll.changed(await this.runtime.list(keys ? { keys } : undefined))) changed.add(k);
    for (const k of changed) this.queue.add(k, 'resync');
    if (changed.size) this.logger.debug('process states changed', { keys: [...changed] });
    return [...changed];
  }

  // --- internals ------------------------------------------------------------------------------

  /**
   * News of a change to `key` reaches the observed view now, though its reconcile may wait (a
   * back-off, busy workers): unknown at once, then read again outside the queue, as the poll reads
   * (a list of one key: no network check in depth, no action). get and plan never show the
   * container as it was before the news.
   */
  private observeAgain(key: string): void {
    const view = this.opts.observed;
    if (!view) return;
    view.invalidate(key);
    this.runtime.list({ keys: [key] }).catch(() => undefined);
  }

  /** Desired containers on the node network: their network can break with no event (see pollProcesses). */
  private bridgeKeys(): string[] {
    const snap = this.snapshot();
    if (this.bridge?.of === snap) return this.bridge.keys;
    const keys: string[] = [];
    for (const [k, d] of snap.containers) if (d.spec.network === 'bridge') keys.push(k);
    this.bridge = { of: snap, keys };
    return keys;
  }

  private async allKeys(): Promise<string[]> {
    const snap = this.snapshot();
    // The keys alone (one readdir) when the runtime can tell them: a resync over N containers then
    // reads each once, in its reconcile, instead of twice.
    const actual = this.runtime.keys ? await this.runtime.keys() : (await this.runtime.list()).map((a) => a.key);
    return [...new Set([...snap.containers.keys(), ...snap.protectedKeys, ...actual])].sort();
  }

  private onSourceChange(source: DesiredSource, keys: string[] | 'all'): void {
    this.merged = undefined;
    this.opts.metrics?.sourceChanges.inc({ source: source.name });
    this.problems.refresh(this.snapshot());
    if (!this.isRunning || this.queue.isShuttingDown) return;
    if (keys === 'all') {
      this.logger.debug('source changed', { source: source.name, keys: 'all' });
      this.allKeys().then(
        (all) => all.forEach((k) => this.queue.add(k, 'change')),
        (err: unknown) => this.logger.warn('cannot list containers', { error: messageOf(err) }),
      );
      return;
    }
    this.logger.debug('source changed', { source: source.name, keys });
    for (const k of keys) this.queue.add(k, 'change');
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      let requeue: Requeue;
      try {
        const report = await this.reconciler.reconcile(key);
        requeue = report.requeue;
        this.watch?.track(key);
        if (report.results.length && !report.error) this.poll.forget(key); // acted on: the next poll's look at it is news
        this.wakePortWaiters(key, report);
      } catch (err) {
        // reconcile() handles its own errors; this is a bug guard.
        this.logger.error('reconcile crashed', { container: key, error: messageOf(err) });
        requeue = { kind: 'backoff', error: err };
      }
      const decision = this.queue.done(key, requeue);
      if (decision.action === 'retry' && requeue.kind === 'backoff') {
        this.logger.debug('retrying with backoff', { container: key, inMs: decision.delayMs });
      }
      if (this.initialPending?.delete(key)) this.checkReady();
    }
  }

  /**
   * A container that frees host ports (a release, a destroy, a replace) wakes the keys waiting for
   * a port another container held, at once rather than after their back-off: two containers that
   * swap ports in one edit converge in one pass (plan/network.ts releases before it claims).
   */
  private wakePortWaiters(key: string, report: ReconcileReport): void {
    if (report.error?.reason === 'PortConflict') this.waitingForPorts.add(key);
    else this.waitingForPorts.delete(key);
    if (!report.results.some((r) => FREES_PORTS.has(r.kind))) return;
    for (const k of this.waitingForPorts) if (k !== key) this.queue.add(k, 'change');
  }

  private checkReady(): void {
    if (this.isReady || !this.initialPending) return;
    if (this.initialPending.size === 0 && this.sources.every((s) => s.synced())) {
      this.isReady = true;
      // Every container known at the start was read by its reconcile, and every later one is read by its
      // own. Not when the node's containers could not be listed: the view lacks those not declared.
      if (!this.firstSyncPartial) this.opts.observed?.markWhole();
      this.logger.info('ready: first sync done');
      this.opts.onReady?.();
    }
  }
}
