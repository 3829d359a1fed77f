/**
 * One reconcile of one key: read → decide → execute → publish → Requeue.
 *
 * - read: desired (the merged snapshots of the sources) and actual (runtime.get), and the facts
 *   the plan weighs: the image's digest (images/pin.ts), the crash-loop back-off of an exit and
 *   the failed liveness (or startup) probe of the running process (probes/prober.ts).
 * - decide: plan() of that key alone, pure. It returns the actions, the starts it holds back
 *   (restartPolicy, crash-loop back-off) and when to come back: the same plan `acetate plan`
 *   prints for the same facts.
 * - execute: exactly the plan's actions, in order (run-actions.ts).
 * - publish: the status to every sink, or the key's removal from them when it exists nowhere.
 * - Requeue: what the queue does next, from the plan and from every failure by its kind
 *   (requeueFor); WorkQueue.done alone turns it into a delay.
 *
 * Whatever happened before is irrelevant: the same desired and actual state, and the same facts,
 * always give the same work.
 */
import type { ContainerStatus, DesiredContainer } from '../api/types.js';
import type { Plan, PlanInput } from '../plan/plan.js';
import type { RestartBackoff } from '../plan/restart.js';
import type { ActionResult } from '../apply/execute.js';
import type { ActualContainer, DeferredResize } from '../runtime/runtime.js';
import type { Waiting } from '../contracts/status-record.js';
import { messageOf } from '../contracts/errors.js';
import type { ImageResolver } from '../images/resolver.js';
import type { WorkQueue } from './queue.js';
import { requeueFor, type Requeue } from './requeue.js';
import type { ReconcileError } from './status.js';
import { problemsForKey, type MergedSnapshot } from './merge-sources.js';
import type { Prober } from './probes/prober.js';
import type { ProbeFailure } from '../plan/probe-kill.js';
import { unhealthyRecord } from './probes/unhealthy.js';
import { pinForReconcile } from './image-pull.js';
import { PendingResolutions } from './image-resolving.js';
import { retryOf, runActions, type ActionStepDeps } from './run-actions.js';

export type PlanFn = (input: PlanInput) => Plan;

export interface ReconcileDeps extends ActionStepDeps {
  plan: PlanFn;
  queue: WorkQueue;
  prober: Prober;
  /** Why a running container's markers for new node data are not all placed, by key (the host-view watcher's). */
  hostViewProblems?: ReadonlyMap<string, string>;
  imageResolver?: ImageResolver;
  /** Retry period of a resize the kernel deferred. */
  deferredRetryMs: number;
  snapshot(): MergedSnapshot;
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

/** How far a Requeue goes: of two, the reconcile keeps the one that goes furthest. */
const RANK: Record<Requeue['kind'], number> = { done: 0, after: 1, now: 2, backoff: 3, terminal: 4 };

/**
 * The Requeue of two steps' outcomes: a failure beats a planned return, a terminal failure any
 * other; of two planned returns, the earlier.
 */
export function mergeRequeue(a: Requeue, b: Requeue): Requeue {
  if (a.kind === 'after' && b.kind === 'after') return a.ms <= b.ms ? a : b;
  return RANK[b.kind] > RANK[a.kind] ? b : a;
}

export class Reconciler {
  /** Reconciles done (for tests). */
  count = 0;

  /** Registry answers that outlive a reconcile (image-resolving.ts): a slow registry holds no worker. */
  private readonly resolutions: PendingResolutions;

  constructor(private readonly deps: ReconcileDeps) {
    this.resolutions = new PendingResolutions({ onSettled: (key) => deps.queue.add(key, 'change') });
  }

  /** Reconciles one key. Never throws: errors become a Requeue and a status. */
  async reconcile(key: string): Promise<ReconcileReport> {
    const d = this.deps;
    const started = performance.now();
    const t0 = d.clock.now();
    this.count++;
    const report: ReconcileReport = { key, requeue: { kind: 'done' }, results: [] };
    const fail = (error: ReconcileError, requeue: Requeue): void => {
      report.error = error;
      report.requeue = mergeRequeue(report.requeue, requeue);
    };

    // --- read
    const snap = d.snapshot();
    const desired = snap.containers.get(key);
    // A Container its namespace's security level refuses: one event per refusal (the status says it at every reconcile).
    d.notices.forbidden(
      key,
      problemsForKey(snap, key).filter((p) => p.kind === 'forbidden'),
    );
    let actual: ActualContainer | undefined;
    try {
      actual = await d.runtime.get(key);
    } catch (err) {
      const requeue = requeueFor(err);
      fail({ message: `cannot read the container: ${messageOf(err)}`, retry: retryOf(requeue) }, requeue);
      d.metrics?.reconciles.inc({ result: 'error' });
      d.metrics?.reconcileErrors.inc({ retry: report.error!.retry });
      d.logger.warn(`reconcile ${key} failed`, { container: key, error: report.error!.message });
      const published = await d.publisher.publish(key, { desired, snap, error: report.error, deferred: [] });
      report.status = published.status;
      if (published.failure !== undefined) report.requeue = mergeRequeue(report.requeue, requeueFor(published.failure));
      return report;
    }
    // The image's digest is a fact found before planning (images/pin.ts); a pull failure holds the key.
    if (!desired?.spec.image) this.resolutions.forget(key);
    const pinned = await pinForReconcile(key, desired, actual, d.imageResolver, d.queue.failures(key), this.resolutions);
    const exited = actual?.process.state === 'exited' ? actual : undefined;
    const backoff = exited && desired?.spec.state === 'Running' ? d.crashLoop.observe(exited) : undefined;
    const unhealthy = d.prober.failure(key, actual?.process.pid);
    const network = await d.runtime.networkFacts?.().catch(() => undefined);

    // --- decide
    const now = d.clock.now();
    const plan = d.plan({
      desired: pinned.desired ? new Map([[key, pinned.desired]]) : new Map(),
      actual: actual ? new Map([[key, actual]]) : new Map(),
      ...(pinned.heldKeys ? { heldKeys: pinned.heldKeys } : {}),
      protectedKeys: snap.protectedKeys,
      failingOrigins: snap.failingOrigins,
      complete: snap.complete,
      incompleteReason: snap.incompleteReason,
      now,
      restartBackoff: new Map<string, RestartBackoff>(backoff ? [[key, backoff]] : []),
      unhealthy: new Map<string, ProbeFailure>(unhealthy ? [[key, unhealthy]] : []),
      ...(d.runtime.granularity ? { granularity: d.runtime.granularity } : {}),
      ...(network ? { network } : {}),
      // One key's plan: the other containers' ranges are not in view (see UserNamespaceFacts).
      ...(d.runtime.userNamespaceFacts ? { userNamespaces: { ...d.runtime.userNamespaceFacts(), othersUnseen: true } } : {}),
    });
    const actions = plan.actions.filter((a) => a.key === key);
    const skipped = plan.skipped.find((s) => s.key === key);
    if (skipped) report.skipped = skipped.reason;
    const held = plan.held.find((h) => h.key === key);
    if (held) report.waiting = { reason: held.reason, message: held.message };
    const due = plan.requeue.find((r) => r.key === key);
    if (due) report.requeue = mergeRequeue(report.requeue, { kind: 'after', ms: Math.max(0, due.at - now) });
    if (pinned.waiting && !pinned.error && !report.waiting) report.waiting = pinned.waiting; // ImageResolving
    if (pinned.error) {
      const requeue = requeueFor(pinned.failure);
      fail({ ...pinned.error, retry: retryOf(requeue) }, requeue);
      if (pinned.waiting && !report.waiting) report.waiting = pinned.waiting;
      d.publisher.setError(key, {
        message: pinned.error.message,
        action: 'pull',
        retry: retryOf(requeue),
        time: new Date(now).toISOString(),
        failures: d.queue.failures(key) + 1,
      });
    }
    if (report.waiting) d.notices.waiting(key, report.waiting);
    else if (actual?.process.unsupervised && actual.process.state === 'running')
      d.notices.waiting(key, { reason: 'SupervisorLost', message: actual.process.unsupervised });
    else d.notices.waiting(key, undefined);

    // --- execute
    // A create that pulls its image first can take minutes: say so now (describe shows the pull's progress).
    const pulling = await this.imageToPull(actions);
    if (pulling) {
      const waiting = { reason: 'ContainerCreating', message: `pulling image ${pulling.ref}@${pulling.digest}`, pulling: pulling.digest };
      await d.publisher.publish(key, { desired, actual, snap, deferred: [], waiting }).catch(() => undefined);
    }
    const done = await runActions(d, key, actions, { wasExited: exited !== undefined, failuresBefore: d.queue.failures(key) });
    report.results = done.results;
    if (done.failure) {
      fail(done.failure.error, done.failure.requeue);
      if (done.failure.waiting) report.waiting = done.failure.waiting;
    }
    if (!report.error) d.publisher.setError(key, undefined);
    if (done.deferred.length) report.requeue = mergeRequeue(report.requeue, { kind: 'after', ms: d.deferredRetryMs });
    if (report.results.length || report.error) {
      try {
        actual = await d.runtime.get(key);
      } catch {
        // keep what we read before; the next reconcile reads again
      }
    }

    // --- publish
    d.prober.sync(key, actual); // before publish: a new process starts not ready until its probes pass
    const failure = await this.publish(key, report, { snap, desired, actual, deferred: done.deferred, exitedBefore: exited?.process.exitCode });
    if (failure !== undefined) report.requeue = mergeRequeue(report.requeue, requeueFor(failure));

    const result = report.error
      ? 'error'
      : report.results.length
        ? 'changed'
        : report.requeue.kind === 'after'
          ? 'requeued'
          : skipped
            ? 'skipped'
            : 'converged';
    d.metrics?.reconciles.inc({ result });
    d.metrics?.reconcileDuration.observe((performance.now() - started) / 1000);
    if (!desired && !actual && !snap.protectedKeys.has(key) && report.requeue.kind === 'done') {
      d.queue.forget(key);
      d.crashLoop.forget(key);
    }
    d.logger.debug('reconciled', { container: key, result, ms: d.clock.now() - t0 });
    return report;
  }

  /** The image a create or replace among `actions` must pull first (not on the node yet), if any. */
  private async imageToPull(actions: Plan['actions']): Promise<{ ref: string; digest: string } | undefined> {
    const store = this.deps.runtime.images;
    for (const a of actions) {
      if (a.kind !== 'create' && a.kind !== 'replace') continue;
      const image = a.desired.spec.image;
      if (store && image?.digest && !(await store.get(image.digest))) return { ref: image.ref, digest: image.digest };
    }
    return undefined;
  }

  /** The publish step; returns a sink's failure. A key that exists nowhere is removed from the sinks. */
  private async publish(
    key: string,
    report: ReconcileReport,
    x: { snap: MergedSnapshot; desired?: DesiredContainer; actual?: ActualContainer; deferred: DeferredResize[]; exitedBefore?: number },
  ): Promise<unknown> {
    const d = this.deps;
    const { snap, desired, actual } = x;
    if (!desired && !actual && !snap.protectedKeys.has(key) && problemsForKey(snap, key, undefined).length === 0) {
      // It exists nowhere any more: its status goes (for Kubernetes, the moment a finalizer may go).
      d.prober.forget(key);
      d.notices.forget(key);
      return d.publisher.forget(key);
    }
    const crashLoop = d.crashLoop.toRecord(key);
    const retryAt = d.queue.dueAt(key);
    const hostView = d.hostViewProblems?.get(key);
    const published = await d.publisher.publish(key, {
      desired,
      actual,
      snap,
      deferred: x.deferred,
      ...(report.error ? { error: report.error } : {}),
      ...(report.waiting ? { waiting: report.waiting } : {}),
      ...(report.skipped ? { skipped: report.skipped } : {}),
      ...(x.exitedBefore !== undefined ? { exitedBefore: x.exitedBefore } : {}),
      ...(crashLoop ? { crashLoop } : {}),
      ...(retryAt !== undefined ? { retryAt } : {}),
      probe: d.prober.verdict(key, actual?.process.pid),
      ...(hostView ? { hostView } : {}),
      unhealthy: unhealthyRecord(d.prober.failure(key, actual?.process.pid), actual),
    });
    report.status = published.status;
    return published.failure;
  }
}
