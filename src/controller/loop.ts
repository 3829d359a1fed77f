/**
 * The continuous reconcile loop (`acetate run`), level-triggered like controller-runtime.
 *
 * - Events only enqueue keys: a source says which keys may have changed, a periodic resync
 *   enqueues every desired and every actual key (drift repair), delayed retries come due.
 * - A worker reconciles one key: it re-reads desired (the merged snapshots of the sources) and
 *   actual (runtime.get), plans that key only, and carries out the actions in order. Whatever
 *   happened before is irrelevant: the same desired and actual state always give the same work.
 * - The queue decides retries (done(key, requeue)); restartPolicy and crash-loop backoff gate the
 *   restart of an exited process; status goes to the sinks, events to the recorders.
 * - stop(): no new work is taken, in-flight actions finish. Containers keep running: a new loop
 *   adopts them (converged → no actions).
 */
import os from 'node:os';
import type { ContainerStatus, DesiredContainer, Phase } from '../api/types.js';
import type { Action } from '../plan/actions.js';
import type { Plan, PlanInput } from '../plan/plan.js';
import type { ActionResult } from '../apply/execute.js';
import { ActionError } from '../apply/errors.js';
import { messageOf } from '../contracts/errors.js';
import type { ActualContainer, DeferredResize, Runtime } from '../runtime/runtime.js';
import type { DesiredSource, SourceProblem } from '../contracts/source.js';
import type { ContainerEvent, EventRecorder, StatusSink } from '../contracts/sinks.js';
import { WorkQueue, type Requeue } from './queue.js';
import type { BackoffOptions } from '../util/backoff.js';
import { realClock, type Clock, type TimerHandle } from '../contracts/clock.js';
import { CrashLoopTracker, policyAllowsRestart, type CrashLoopOptions } from './crashloop.js';
import { computeStatus, formatResources, type ReconcileError } from './status.js';
import { mergeSnapshots, originOfRef, problemsForKey, type MergedSnapshot } from './merge-sources.js';
import { type StatusStore } from './status-store.js';
import { logAction } from '../observability/logger.js';
import { silentLogger, type Logger } from '../contracts/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Prober } from './probes/prober.js';
import { killUnhealthy } from './probes/unhealthy.js';
import { probeTools } from './probes/tools.js';
import { networkSummary } from './network-status.js';
import { ImageResolver } from '../images/resolver.js';
import { pinForReconcile, pullWaiting } from './image-pull.js';
import type { Waiting, RecordedAction, StatusRecord } from '../contracts/status-record.js';
import { isDetailedSink } from '../contracts/sinks.js';

export type PlanFn = (input: PlanInput) => Plan;
export type ExecuteFn = (action: Action, ctx: { runtime: Runtime }) => Promise<ActionResult>;

export interface ControllerOptions {
  runtime: Runtime;
  sources: DesiredSource[];
  /** plan() from src/plan/plan.ts (injected so the loop can be tested with fakes). */
  plan: PlanFn;
  /** executeAction() from src/apply/execute.ts. */
  execute: ExecuteFn;
  clock?: Clock;
  /** Keys reconciled at once. Default 4. */
  concurrency?: number;
  /** Full resync period of actual state; 0 disables. Default 30 s. */
  resyncMs?: number;
  /**
   * Period of a light poll of process states (runtime.list) that enqueues only the keys whose
   * process changed (exited, vanished, appeared), so an exit is noticed within this period rather
   * than at the next full resync. 0 disables. Default 2 s.
   */
  processPollMs?: number;
  /** Error backoff per key. Default 1 s doubling to 5 min. */
  backoff?: BackoffOptions;
  /** Crash-loop restart backoff. Default 10 s doubling to 5 min, reset after 10 min running. */
  crashLoop?: CrashLoopOptions;
  /** Retry period of a resize the kernel deferred. Default 15 s. */
  deferredRetryMs?: number;
  statusSinks?: StatusSink[];
  recorders?: EventRecorder[];
  /** Seeds previous statuses (stable lastTransitionTime across restarts) and receives source problems. */
  statusStore?: StatusStore;
  logger?: Logger;
  metrics?: Metrics;
  /** Reported in status.node. Default: the host name. */
  nodeName?: string;
  /** Probe checks run at once across all containers (see probes/prober.ts). Default 8. */
  probeConcurrency?: number;
  /** How long a registry's answer for an image name (imagePullPolicy Always) is reused. Default 10 s. */
  imageResolveCacheMs?: number;
}

/** What one reconcile of a key did (returned for tests and callers). */
export interface ReconcileReport {
  key: string;
  requeue: Requeue;
  results: ActionResult[];
  error?: ReconcileError;
  waiting?: Waiting;
  status?: ContainerStatus;
  skipped?: string;
}

const EVENT_REASON: Record<string, { type: ContainerEvent['type']; reason: string }> = {
  created: { type: 'Normal', reason: 'Created' },
  started: { type: 'Normal', reason: 'Started' },
  stopped: { type: 'Normal', reason: 'Stopped' },
  resized: { type: 'Normal', reason: 'Resized' },
  deferred: { type: 'Warning', reason: 'ResizeDeferred' },
  restarted: { type: 'Normal', reason: 'Restarted' },
  replaced: { type: 'Normal', reason: 'Replaced' },
  configured: { type: 'Normal', reason: 'Configured' },
  published: { type: 'Normal', reason: 'PortsPublished' },
  repaired: { type: 'Warning', reason: 'NetworkRepaired' },
  destroyed: { type: 'Normal', reason: 'Destroyed' },
};

const MAX_RECENT_ACTIONS = 10;
/** Manifest problem lines logged per file at once (the rest are counted). */
const MAX_LOGGED_PER_ORIGIN = 20;

function problemText(p: SourceProblem): string {
  return `${p.origin}${p.line !== undefined ? `:${p.line}` : ''}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

export class Controller {
  readonly queue: WorkQueue;
  readonly crashLoop: CrashLoopTracker;
  /** Startup, readiness and liveness probes, on timers of their own; results enqueue keys. */
  readonly prober: Prober;
  private readonly runtime: Runtime;
  private readonly sources: DesiredSource[];
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics?: Metrics;
  private readonly sinks: StatusSink[];
  private readonly recorders: EventRecorder[];
  private readonly concurrency: number;
  private readonly resyncMs: number;
  private readonly processPollMs: number;
  private pollTimer?: TimerHandle;
  private pollInFlight?: Promise<void>;
  /** Last process state seen per key by the poll: state|pid|startedAt. */
  private seenProcesses = new Map<string, string>();
  private polledOnce = false;
  private readonly deferredRetryMs: number;
  private readonly nodeName: string;
  private merged?: MergedSnapshot;
  private lastProblems = new Map<string, SourceProblem>();
  private lastIncomplete?: string;
  private statuses = new Map<string, ContainerStatus>();
  /** The container (its createdAt) that statuses and recent actions of a key are about. */
  private incarnations = new Map<string, string>();
  private phases = new Map<string, Phase>();
  private waitingShown = new Map<string, string>();
  private recent = new Map<string, RecordedAction[]>();
  private lastErrors = new Map<string, NonNullable<StatusRecord['lastError']>>();
  private workers: Promise<void>[] = [];
  private resyncTimer?: TimerHandle;
  private resyncInFlight?: Promise<void>;
  private isRunning = false;
  private isReady = false;
  private initialPending?: Set<string>;
  private stopping?: Promise<void>;
  private readonly imageResolver?: ImageResolver;
  /** Reconciles done (for tests). */
  reconcileCount = 0;

  constructor(private readonly opts: ControllerOptions) {
    this.runtime = opts.runtime;
    this.sources = opts.sources;
    this.clock = opts.clock ?? realClock;
    this.logger = opts.logger ?? silentLogger;
    this.metrics = opts.metrics;
    this.sinks = [...(opts.statusSinks ?? [])];
    if (opts.statusStore && !this.sinks.includes(opts.statusStore)) this.sinks.push(opts.statusStore);
    this.recorders = opts.recorders ?? [];
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.resyncMs = opts.resyncMs ?? 30_000;
    this.processPollMs = opts.processPollMs ?? 2_000;
    this.deferredRetryMs = opts.deferredRetryMs ?? 15_000;
    this.nodeName = opts.nodeName ?? os.hostname();
    this.queue = new WorkQueue({ clock: this.clock, backoff: opts.backoff });
    this.crashLoop = new CrashLoopTracker(opts.crashLoop, this.clock);
    this.prober = new Prober({ runtime: this.runtime, clock: this.clock, concurrency: opts.probeConcurrency, tools: probeTools, onChange: (key) => this.queue.add(key, 'change') });
    if (opts.runtime.images) this.imageResolver = new ImageResolver(opts.runtime.images, { now: () => this.clock.now(), ...(opts.imageResolveCacheMs !== undefined ? { cacheMs: opts.imageResolveCacheMs } : {}) });
    this.metrics?.addCollector(() => this.collectMetrics());
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
      for (const r of await this.opts.statusStore.load().catch(() => [])) {
        this.statuses.set(r.key, r.status);
        if (r.incarnation) this.incarnations.set(r.key, r.incarnation);
        if (r.recentActions) this.recent.set(r.key, r.recentActions);
      }
    }
    await Promise.all(this.sources.map((s) => s.start((keys) => this.onSourceChange(s, keys))));
    this.merged = undefined;
    this.refreshProblems();
    for (let i = 0; i < this.concurrency; i++) this.workers.push(this.worker());
    // First full sync: every desired and every actual key, once, before we call ourselves ready.
    const keys = await this.allKeys().catch((err: unknown) => {
      this.logger.error('cannot list containers for the first sync', { error: messageOf(err) });
      return [...this.snapshot().containers.keys()];
    });
    this.logger.info('loop started', { sources: this.sources.map((s) => s.name), concurrency: this.concurrency, resyncMs: this.resyncMs, keys: keys.length });
    this.initialPending = new Set(keys);
    for (const k of keys) this.queue.add(k, 'change');
    this.checkReady();
    this.scheduleResync();
    this.schedulePoll();
  }

  /** Stops taking work, lets in-flight reconciles finish, stops the sources. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('stopping: finishing in-flight work', { inFlight: this.queue.processingCount() });
      if (this.resyncTimer) this.clock.clearTimeout(this.resyncTimer);
      this.resyncTimer = undefined;
      if (this.pollTimer) this.clock.clearTimeout(this.pollTimer);
      this.pollTimer = undefined;
      this.queue.shutdown();
      this.prober.stop();
      await Promise.all(this.workers);
      await this.resyncInFlight?.catch(() => undefined);
      await this.pollInFlight?.catch(() => undefined);
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

  /** Enqueues every desired and every actual key now (what the periodic resync does). */
  async resync(): Promise<void> {
    if (this.queue.isShuttingDown) return;
    this.metrics?.resyncs.inc();
    this.merged = undefined;
    const keys = await this.allKeys();
    for (const k of keys) this.queue.add(k, 'resync');
    // Status records of keys that exist nowhere any more.
    const known = new Set(keys);
    for (const k of [...this.statuses.keys()]) {
      if (!known.has(k) && !this.queue.isProcessing(k)) await this.forgetKey(k);
    }
  }

  // --- internals ------------------------------------------------------------------------------

  private async allKeys(): Promise<string[]> {
    const snap = this.snapshot();
    const actual = await this.runtime.list();
    return [...new Set([...snap.containers.keys(), ...snap.protectedKeys, ...actual.map((a) => a.key)])].sort();
  }

  private onSourceChange(source: DesiredSource, keys: string[] | 'all'): void {
    this.merged = undefined;
    this.metrics?.sourceChanges.inc({ source: source.name });
    this.refreshProblems();
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

  /** Logs problems that appeared or went away; writes them for `acetate get`. */
  private refreshProblems(): void {
    const snap = this.snapshot();
    const now = new Map<string, SourceProblem>();
    for (const p of snap.problems) now.set(problemText(p), p);
    // At most MAX_LOGGED_PER_ORIGIN lines per file each way, then a count: 10,000 bad documents are not 10,000 log lines.
    const logged = new Map<string, number>();
    const logCapped = (p: SourceProblem, log: () => void): void => {
      const n = (logged.get(p.origin) ?? 0) + 1;
      logged.set(p.origin, n);
      if (n <= MAX_LOGGED_PER_ORIGIN) log();
    };
    for (const [text, p] of now) {
      if (!this.lastProblems.has(text)) logCapped(p, () => this.logger.warn(`manifest problem: ${text}`, { origin: p.origin, kind: p.kind, keys: p.keys, line: p.line, field: p.field }));
    }
    for (const [text, p] of this.lastProblems) {
      if (!now.has(text)) logCapped(p, () => this.logger.info(`manifest problem resolved: ${text}`, { origin: p.origin }));
    }
    for (const [origin, n] of logged) if (n > MAX_LOGGED_PER_ORIGIN) this.logger.warn(`${origin}: ${n - MAX_LOGGED_PER_ORIGIN} more manifest problems changed (not logged one by one)`, { origin });
    this.lastProblems = now;
    if (snap.incompleteReason !== this.lastIncomplete) {
      if (snap.incompleteReason) this.logger.warn(`desired state is incomplete: ${snap.incompleteReason}; no container will be destroyed (--allow-empty allows it)`);
      else if (this.lastIncomplete !== undefined) this.logger.info('desired state is complete again');
      this.lastIncomplete = snap.incompleteReason;
    }
    const rec: { problems: SourceProblem[]; complete: boolean; incompleteReason?: string } = { problems: snap.problems, complete: snap.complete };
    if (snap.incompleteReason) rec.incompleteReason = snap.incompleteReason;
    this.opts.statusStore?.writeProblems(rec).catch((err: unknown) => this.logger.warn('cannot write problems', { error: messageOf(err) }));
  }

  private scheduleResync(): void {
    if (this.resyncMs <= 0 || this.queue.isShuttingDown) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      this.resyncTimer = undefined;
      this.resyncInFlight = this.resync()
        .catch((err: unknown) => {
          this.logger.warn('resync failed', { error: messageOf(err) });
        })
        .finally(() => {
          this.resyncInFlight = undefined;
          this.scheduleResync();
        });
    }, this.resyncMs);
  }

  private schedulePoll(): void {
    if (this.processPollMs <= 0 || this.queue.isShuttingDown) return;
    this.pollTimer = this.clock.setTimeout(() => {
      this.pollTimer = undefined;
      this.pollInFlight = this.pollProcesses()
        .then(() => undefined)
        .catch((err: unknown) => {
          this.logger.debug('process poll failed', { error: messageOf(err) });
        })
        .finally(() => {
          this.pollInFlight = undefined;
          this.schedulePoll();
        });
    }, this.processPollMs);
  }

  /** Enqueues the keys whose process changed since the last poll (a PLEG-like relist). */
  async pollProcesses(): Promise<string[]> {
    if (this.queue.isShuttingDown) return [];
    const list = await this.runtime.list();
    // A supervisor lost under a running process changes the key too: reported within one poll.
    const now = new Map(list.map((a) => [a.key, `${a.process.state}|${a.process.pid ?? ''}|${a.process.startedAt ?? ''}|${a.process.unsupervised ? 'u' : ''}`]));
    const changed: string[] = [];
    for (const [k, v] of now) if (this.seenProcesses.get(k) !== v) changed.push(k);
    for (const k of this.seenProcesses.keys()) if (!now.has(k)) changed.push(k);
    const first = !this.polledOnce;
    this.polledOnce = true;
    this.seenProcesses = now;
    // The first poll only learns (the first sync covered every key), but a supervisor lost since is news.
    if (first) changed.splice(0, changed.length, ...list.filter((a) => a.process.unsupervised).map((a) => a.key));
    for (const k of changed) this.queue.add(k, 'resync');
    if (changed.length) this.logger.debug('process states changed', { keys: changed });
    return changed;
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      let requeue: Requeue;
      try {
        requeue = (await this.reconcile(key)).requeue;
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

  private checkReady(): void {
    if (this.isReady || !this.initialPending) return;
    if (this.initialPending.size === 0 && this.sources.every((s) => s.synced())) {
      this.isReady = true;
      this.logger.info('ready: first sync done');
    }
  }

  /** Reconciles one key. Never throws: errors become a requeue decision and a status. */
  async reconcile(key: string): Promise<ReconcileReport> {
    const t0 = this.clock.now();
    const started = performance.now();
    this.reconcileCount++;
    const report: ReconcileReport = { key, requeue: { kind: 'done' }, results: [] };
    const snap = this.snapshot();
    const desired = snap.containers.get(key);
    let actual: ActualContainer | undefined;
    try {
      actual = await this.runtime.get(key);
    } catch (err) {
      report.error = { message: `cannot read the container: ${messageOf(err)}`, retry: 'backoff' };
      report.requeue = { kind: 'backoff', error: err };
      this.metrics?.reconciles.inc({ result: 'error' });
      this.metrics?.reconcileErrors.inc({ retry: 'backoff' });
      this.logger.warn(`reconcile ${key} failed`, { container: key, error: report.error.message });
      await this.publish(key, { desired, actual: undefined, snap, report, deferred: [] });
      return report;
    }
    // A failed liveness (or startup) probe: kill the process, as if it crashed (see probes/).
    const unhealthy = this.prober.takeFailure(key, actual?.process.pid);
    if (unhealthy && actual && desired?.spec.state === 'Running') {
      try {
        await killUnhealthy({ runtime: this.runtime, key, graceSeconds: desired.spec.terminationGracePeriodSeconds, failure: unhealthy, emit: (ev) => this.emit(key, ev), logger: this.logger });
        actual = await this.runtime.get(key);
      } catch (err) {
        this.logger.warn(`${key}: cannot kill the unhealthy process`, { container: key, error: messageOf(err) });
      }
    }

    // The image's digest is a fact found before planning (images/pin.ts); a pull failure holds the key.
    const pinned = await pinForReconcile(key, desired, actual, this.imageResolver, this.queue.failures(key));
    const plan = this.opts.plan({
      desired: pinned.desired ? new Map([[key, pinned.desired]]) : new Map(),
      actual: actual ? new Map([[key, actual]]) : new Map(),
      ...(pinned.heldKeys ? { heldKeys: pinned.heldKeys } : {}),
      protectedKeys: snap.protectedKeys,
      failingOrigins: snap.failingOrigins,
      complete: snap.complete,
      incompleteReason: snap.incompleteReason,
    });
    let actions = plan.actions.filter((a) => a.key === key);
    const skipped = plan.skipped.find((s) => s.key === key);
    if (skipped) report.skipped = skipped.reason;

    // restartPolicy and crash-loop backoff gate the restart of a process that exited.
    let isRestart = false;
    if (desired && actual?.process.state === 'exited' && desired.spec.state === 'Running') {
      const startIdx = actions.findIndex((a) => a.kind === 'start');
      if (startIdx >= 0) {
        const d = this.crashLoop.decide(key, { policy: desired.spec.restartPolicy, process: actual.process, restartCount: actual.restartCount });
        if (d.kind === 'now') {
          isRestart = true;
        } else {
          actions = actions.filter((_, i) => i !== startIdx);
          if (d.kind === 'later') {
            report.waiting = { reason: 'CrashLoopBackOff', message: d.reason };
            report.requeue = { kind: 'after', ms: d.delayMs };
          } else {
            report.waiting = { reason: 'RestartPolicy', message: d.reason };
          }
        }
      } else if (!actions.some((a) => a.kind === 'replace') && !policyAllowsRestart(desired.spec.restartPolicy, actual.process.exitCode)) {
        const code = actual.process.exitCode;
        report.waiting = code === undefined
          ? {
            reason: 'ExitCodeUnknown',
            message: `exited with an unknown exit code (${actual.process.unsupervised ?? 'not recorded'}); restartPolicy ${desired.spec.restartPolicy} does not run again a container that may have succeeded (change its manifest to run it again)`,
          }
          : { reason: 'RestartPolicy', message: `exited with code ${code}; restartPolicy ${desired.spec.restartPolicy} does not restart it` };
      }
    }
    if (pinned.error) {
      report.error = pinned.error;
      report.requeue = { kind: 'backoff', error: new Error(pinned.error.message) };
      if (pinned.waiting && !report.waiting) report.waiting = pinned.waiting;
      this.lastErrors.set(key, { message: pinned.error.message, action: 'pull', retry: 'backoff', time: new Date(this.clock.now()).toISOString(), failures: this.queue.failures(key) + 1 });
    }
    if (report.waiting) this.noteWaiting(key, report.waiting);
    else if (actual?.process.unsupervised && actual.process.state === 'running') this.noteWaiting(key, { reason: 'SupervisorLost', message: actual.process.unsupervised });
    else this.waitingShown.delete(key);

    const exitedBefore = actual?.process.state === 'exited' ? actual.process.exitCode : undefined;
    const deferred: DeferredResize[] = [];
    for (const action of actions) {
      const a0 = performance.now();
      try {
        const r = await this.opts.execute(action, { runtime: this.runtime });
        report.results.push(r);
        const durationMs = r.durationMs ?? Math.round(performance.now() - a0);
        this.metrics?.actions.inc({ kind: r.kind, outcome: r.outcome });
        this.metrics?.actionDuration.observe({ kind: r.kind, outcome: r.outcome }, durationMs / 1000);
        const restarted = isRestart && action.kind === 'start';
        logAction(this.logger, {
          container: key,
          action: action.kind,
          durationMs,
          result: r.outcome,
          reason: action.reason,
          pid: r.pid,
        });
        this.remember(key, { kind: action.kind, outcome: r.outcome, reason: action.reason, durationMs, time: new Date(this.clock.now()).toISOString() });
        if (restarted) {
          this.metrics?.restarts.inc();
          this.emit(key, { type: 'Normal', reason: 'Restarted', message: `${action.reason}; pid ${r.pid ?? '?'}` });
        } else {
          const ev = EVENT_REASON[r.outcome] ?? { type: 'Normal' as const, reason: r.outcome };
          const extra = r.deferred?.length ? `: ${r.deferred.map((d) => `${d.resource}: ${d.reason}`).join('; ')}` : '';
          this.emit(key, { type: ev.type, reason: ev.reason, message: `${action.reason}${extra}` });
        }
        if (action.kind === 'start' || action.kind === 'create' || action.kind === 'restart' || action.kind === 'replace') {
          if (action.kind !== 'start') this.crashLoop.forget(key);
          this.crashLoop.noteStarted(key);
        }
        if (action.kind === 'destroy') this.crashLoop.forget(key);
        if (r.deferred?.length) deferred.push(...r.deferred);
      } catch (err) {
        const cause = err instanceof ActionError ? err.cause : err;
        const retry = err instanceof ActionError ? err.retry : 'backoff';
        const durationMs = Math.round(performance.now() - a0);
        const reason = (cause as { reason?: unknown } | undefined)?.reason;
        report.error = { message: messageOf(cause), action: action.kind, retry, ...(typeof reason === 'string' ? { reason } : {}) };
        const pull = pullWaiting(cause, this.queue.failures(key));
        if (pull) report.waiting = pull;
        report.requeue = retry === 'terminal' ? { kind: 'terminal', error: err } : { kind: 'backoff', error: err };
        this.metrics?.actions.inc({ kind: action.kind, outcome: 'error' });
        this.metrics?.actionDuration.observe({ kind: action.kind, outcome: 'error' }, durationMs / 1000);
        this.metrics?.reconcileErrors.inc({ retry });
        const failures = this.queue.failures(key) + 1;
        logAction(this.logger, { container: key, action: action.kind, durationMs, result: 'error', reason: action.reason, error: report.error.message, retry });
        this.remember(key, { kind: action.kind, outcome: 'error', reason: action.reason, durationMs, time: new Date(this.clock.now()).toISOString(), error: report.error.message });
        this.emit(key, { type: 'Warning', reason: 'Failed', message: `${action.kind} failed: ${report.error.message}` });
        this.lastErrors.set(key, { message: report.error.message, action: action.kind, retry, time: new Date(this.clock.now()).toISOString(), failures });
        break; // later actions of this key depend on this one
      }
    }
    if (!report.error) this.lastErrors.delete(key);
    if (deferred.length && report.requeue.kind === 'done') report.requeue = { kind: 'after', ms: this.deferredRetryMs };

    if (report.results.length || report.error) {
      try {
        actual = await this.runtime.get(key);
      } catch {
        // keep what we read before; the next reconcile reads again
      }
    }
    this.prober.sync(key, actual); // before publish: a new process starts not ready until its probes pass
    report.status = await this.publish(key, { desired, actual, snap, report, deferred, exitedBefore });
    const result = report.error ? 'error' : report.results.length ? 'changed' : report.requeue.kind === 'after' ? 'requeued' : skipped ? 'skipped' : 'converged';
    this.metrics?.reconciles.inc({ result });
    this.metrics?.reconcileDuration.observe((performance.now() - started) / 1000);
    if (!desired && !actual && !snap.protectedKeys.has(key)) {
      this.queue.forget(key);
      this.crashLoop.forget(key);
    }
    this.logger.debug('reconciled', { container: key, result, ms: this.clock.now() - t0 });
    return report;
  }

  private noteWaiting(key: string, w: Waiting): void {
    // One log line / event per new waiting reason, not one per reconcile.
    const text = `${w.reason}: ${w.message}`;
    if (this.waitingShown.get(key) === text) return;
    this.waitingShown.set(key, text);
    if (w.reason === 'SupervisorLost' || w.reason === 'ExitCodeUnknown') this.logger.warn(`${key}: ${w.message}`, { container: key, reason: w.reason });
    else this.logger.info(`${key}: ${w.message}`, { container: key, reason: w.reason });
    const event =
      w.reason === 'CrashLoopBackOff' || w.reason === 'ImagePullBackOff' ? 'BackOff' : w.reason === 'SupervisorLost' ? 'SupervisorLost' : w.reason.startsWith('ErrImage') ? 'Failed' : 'NotRestarted';
    this.emit(key, { type: 'Warning', reason: event, message: w.message });
  }

  private remember(key: string, a: RecordedAction): void {
    const list = this.recent.get(key) ?? [];
    list.push(a);
    while (list.length > MAX_RECENT_ACTIONS) list.shift();
    this.recent.set(key, list);
  }

  private emit(key: string, ev: ContainerEvent): void {
    for (const r of this.recorders) {
      try {
        r.record(key, ev);
      } catch (err) {
        this.logger.warn('event recorder failed', { error: messageOf(err) });
      }
    }
  }

  private async publish(
    key: string,
    ctx: {
      desired?: DesiredContainer;
      actual?: ActualContainer;
      snap: MergedSnapshot;
      report: ReconcileReport;
      deferred: DeferredResize[];
      /** Exit code of a run that ended, seen before this reconcile restarted it. */
      exitedBefore?: number;
    },
  ): Promise<ContainerStatus | undefined> {
    const { desired, actual, snap, report } = ctx;
    const isProtected = snap.protectedKeys.has(key);
    // A file-wide problem (e.g. a YAML syntax error, keys unknown) concerns the containers last
    // applied from that file, not those it still validly declares.
    const declaredIn = !desired && actual ? originOfRef(actual.applied.source, key) : undefined;
    const problems = problemsForKey(snap, key, declaredIn);
    if (!desired && !actual && !isProtected && problems.length === 0) {
      await this.forgetKey(key);
      return undefined;
    }
    const incarnation = actual?.applied.createdAt;
    const known = this.incarnations.get(key);
    if (incarnation && known && known !== incarnation) {
      // Destroyed and created again since: nothing of the earlier container's status carries over
      // (its pid, exit code, conditions), only the actions that made this one.
      this.statuses.delete(key);
      this.recent.set(key, (this.recent.get(key) ?? []).filter((a) => a.time >= incarnation));
    }
    if (incarnation) this.incarnations.set(key, incarnation);
    const pendingActions: string[] = [];
    if (report.skipped && !isProtected) pendingActions.push(`left alone: ${report.skipped}`);
    const status = computeStatus({
      key,
      desired,
      actual,
      previous: this.statuses.get(key),
      error: report.error,
      problems,
      protectedKey: isProtected,
      waiting: report.waiting,
      deferred: ctx.deferred,
      lastExitCode: ctx.exitedBefore,
      pendingActions,
      node: this.nodeName,
      probe: this.prober.verdict(key, actual?.process.pid),
      now: this.clock.now(),
    });
    this.statuses.set(key, status);
    if (status.phase) this.phases.set(key, status.phase);
    const lastError = this.lastErrors.get(key);
    if (lastError && report.error) {
      const due = this.queue.dueAt(key);
      if (due !== undefined) lastError.nextRetryAt = new Date(due).toISOString();
    }
    const record: StatusRecord = {
      key,
      ...(incarnation ? { incarnation } : {}),
      namespace: desired?.namespace ?? actual?.namespace ?? key.split('/')[0] ?? 'default',
      name: desired?.name ?? actual?.name ?? key.split('/').slice(1).join('/'),
      status,
      problems,
      recentActions: this.recent.get(key) ?? [],
      updatedAt: new Date(this.clock.now()).toISOString(),
    };
    const source = desired?.source ?? actual?.applied.source;
    if (source) record.source = source;
    if (desired) {
      record.desired = {
        state: desired.spec.state,
        template: desired.spec.template,
        command: [...desired.spec.command, ...desired.spec.args],
        restartPolicy: desired.spec.restartPolicy,
        resources: formatResources(desired.spec.resources) ?? {},
      };
    }
    if (actual) {
      record.actual = {
        id: actual.id,
        state: actual.process.state,
        restartCount: actual.restartCount,
        limits: formatResources(actual.limits) ?? {},
        applied: { state: actual.applied.spec.state, resources: formatResources(actual.applied.spec.resources) ?? {} },
      };
      if (actual.process.pid !== undefined) record.actual.pid = actual.process.pid;
      if (actual.process.exitCode !== undefined) record.actual.exitCode = actual.process.exitCode;
      if (actual.process.reason) record.actual.reason = actual.process.reason;
      if (actual.process.unsupervised) record.actual.unsupervised = actual.process.unsupervised;
      if (actual.process.startedAt) record.actual.startedAt = actual.process.startedAt;
      if (actual.process.finishedAt) record.actual.finishedAt = actual.process.finishedAt;
      record.actual.network = networkSummary(actual);
      if (actual.disk) record.actual.disk = { ...actual.disk };
    }
    if (lastError) record.lastError = lastError;
    if (report.waiting) record.waiting = report.waiting;
    for (const sink of this.sinks) {
      try {
        if (isDetailedSink(sink)) await sink.publishDetailed(record);
        else await sink.publish(key, status);
      } catch (err) {
        this.logger.warn('cannot publish status', { container: key, error: messageOf(err) });
      }
    }
    return status;
  }

  private async forgetKey(key: string): Promise<void> {
    this.prober.forget(key);
    this.statuses.delete(key);
    this.incarnations.delete(key);
    this.phases.delete(key);
    this.recent.delete(key);
    this.lastErrors.delete(key);
    this.waitingShown.delete(key);
    // Always tell detailed sinks: for the kube status writer this is the moment a terminating
    // object's finalizer may go, even if the loop never published a status for it.
    for (const sink of this.sinks) {
      if (!isDetailedSink(sink)) continue;
      try {
        await sink.remove(key);
      } catch (err) {
        this.logger.warn('cannot remove status', { container: key, error: messageOf(err) });
      }
    }
  }

  private collectMetrics(): void {
    const m = this.metrics;
    if (!m) return;
    m.queueDepth.set(this.queue.len());
    m.queueRetries.set(this.queue.delayedCount());
    const counts = new Map<Phase, number>();
    for (const p of this.phases.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    m.setPhases(counts);
    const snap = this.snapshot();
    const invalid = new Set<string>();
    const conflicts = new Set<string>();
    m.manifestProblems.reset();
    const perOrigin = new Map<string, number>();
    for (const p of snap.problems) {
      if (p.kind === 'conflict') for (const k of p.keys) conflicts.add(k);
      else invalid.add(p.origin);
      const id = `${p.origin}\u0000${p.kind}`;
      perOrigin.set(id, (perOrigin.get(id) ?? 0) + 1);
    }
    for (const [id, n] of perOrigin) {
      const [origin, kind] = id.split('\u0000') as [string, string];
      m.manifestProblems.set({ origin, kind }, n);
    }
    m.invalidManifests.set(invalid.size);
    m.manifestConflicts.set(conflicts.size);
    m.ready.set(this.isReady ? 1 : 0);
    m.setDiskUsage(this.statuses);
  }
}
