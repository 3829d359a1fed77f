/**
 * The execute step of a reconcile: carries out the actions the plan returned for one key, in
 * order, exactly those; logs, counts, records and reports each one. The first failure ends the
 * key's actions (later ones depend on it) and says, by its kind, what the queue does next
 * (requeueFor: WorkQueue.done alone turns it into a delay).
 */
import type { Action, KillAction } from '../plan/actions.js';
import type { ActionResult } from '../apply/execute.js';
import { ActionError } from '../apply/errors.js';
import type { DeferredResize, Runtime } from '../runtime/runtime.js';
import type { Waiting } from '../contracts/status-record.js';
import type { Clock } from '../contracts/clock.js';
import type { Logger } from '../contracts/logger.js';
import { messageOf } from '../contracts/errors.js';
import type { Metrics } from '../observability/metrics.js';
import { logAction } from '../observability/action-log.js';
import { requeueFor, type Requeue } from './requeue.js';
import type { CrashLoopTracker } from './crashloop.js';
import type { ReconcileError } from './status.js';
import type { StatusPublisher } from './publish.js';
import { EVENT_REASON, type Notices } from './notices.js';
import { pullWaiting } from './image-pull.js';
import { killEvents, killLogLine } from './probes/unhealthy.js';

export type ExecuteFn = (action: Action, ctx: { runtime: Runtime }) => Promise<ActionResult>;

export interface ActionStepDeps {
  runtime: Runtime;
  execute: ExecuteFn;
  clock: Clock;
  logger: Logger;
  metrics?: Metrics;
  crashLoop: CrashLoopTracker;
  publisher: StatusPublisher;
  notices: Notices;
}

export interface ActionsOutcome {
  results: ActionResult[];
  deferred: DeferredResize[];
  failure?: { error: ReconcileError; requeue: Requeue; waiting?: Waiting };
}

/** The retry words of status and metrics for a Requeue. */
export function retryOf(r: Requeue): ReconcileError['retry'] {
  return r.kind === 'terminal' ? 'terminal' : 'backoff';
}

/**
 * Carries out `actions` of key. `wasExited`: the process had exited (a start is then a restart).
 * `failuresBefore`: the key's failures in a row so far (the queue's count).
 */
export async function runActions(
  deps: ActionStepDeps,
  key: string,
  actions: Action[],
  opts: { wasExited: boolean; failuresBefore: number },
): Promise<ActionsOutcome> {
  const out: ActionsOutcome = { results: [], deferred: [] };
  const now = (): string => new Date(deps.clock.now()).toISOString();
  for (const action of actions) {
    const a0 = performance.now();
    try {
      const r = await deps.execute(action, { runtime: deps.runtime });
      out.results.push(r);
      const durationMs = r.durationMs ?? Math.round(performance.now() - a0);
      deps.metrics?.actions.inc({ kind: r.kind, outcome: r.outcome });
      deps.metrics?.actionDuration.observe({ kind: r.kind, outcome: r.outcome }, durationMs / 1000);
      logAction(deps.logger, { container: key, action: action.kind, durationMs, result: r.outcome, reason: action.reason, pid: r.pid });
      deps.publisher.remember(key, { kind: action.kind, outcome: r.outcome, reason: action.reason, durationMs, time: now() });
      if (opts.wasExited && action.kind === 'start') {
        deps.metrics?.restarts.inc();
        deps.notices.emit(key, { type: 'Normal', reason: 'Restarted', message: `${action.reason}; pid ${r.pid ?? '?'}` });
      } else if (action.kind === 'kill') {
        if (r.outcome === 'killed') tellKill(deps, action);
      } else {
        const ev = EVENT_REASON[r.outcome] ?? { type: 'Normal' as const, reason: r.outcome };
        const extra = r.deferred?.length ? `: ${r.deferred.map((d) => `${d.resource}: ${d.reason}`).join('; ')}` : '';
        deps.notices.emit(key, { type: ev.type, reason: ev.reason, message: `${action.reason}${extra}` });
      }
      noteForCrashLoop(deps.crashLoop, action);
      if (r.deferred?.length) out.deferred.push(...r.deferred);
    } catch (err) {
      const cause = err instanceof ActionError ? err.cause : err;
      const requeue = requeueFor(err);
      const retry = retryOf(requeue);
      const durationMs = Math.round(performance.now() - a0);
      const reason = (cause as { reason?: unknown } | undefined)?.reason;
      const error: ReconcileError = { message: messageOf(cause), action: action.kind, retry, ...(typeof reason === 'string' ? { reason } : {}) };
      const waiting = pullWaiting(cause, opts.failuresBefore);
      out.failure = { error, requeue, ...(waiting ? { waiting } : {}) };
      deps.metrics?.actions.inc({ kind: action.kind, outcome: 'error' });
      deps.metrics?.actionDuration.observe({ kind: action.kind, outcome: 'error' }, durationMs / 1000);
      deps.metrics?.reconcileErrors.inc({ retry });
      logAction(deps.logger, { container: key, action: action.kind, durationMs, result: 'error', reason: action.reason, error: error.message, retry });
      deps.publisher.remember(key, { kind: action.kind, outcome: 'error', reason: action.reason, durationMs, time: now(), error: error.message });
      deps.notices.emit(key, { type: 'Warning', reason: 'Failed', message: `${action.kind} failed: ${error.message}` });
      deps.publisher.setError(key, { message: error.message, action: action.kind, retry, time: now(), failures: opts.failuresBefore + 1 });
      break; // later actions of this key depend on this one
    }
  }
  return out;
}

/**
 * A kill is told as the kubelet tells it, the probe's output (Unhealthy) then Killing, but only
 * once it was made: not when execute found the process already gone (`unchanged`), nor for an
 * attempt that failed (its retry tells it, once).
 */
function tellKill(deps: ActionStepDeps, action: KillAction): void {
  deps.logger.warn(killLogLine(action), { container: action.key, probe: action.probe });
  for (const ev of killEvents(action)) deps.notices.emit(action.key, ev);
}

/** A new process starts a new run (the streak goes on); a new container starts a new streak. */
function noteForCrashLoop(t: CrashLoopTracker, action: Action): void {
  if (action.kind === 'start' || action.kind === 'create' || action.kind === 'restart' || action.kind === 'replace') {
    if (action.kind !== 'start') t.forget(action.key);
    t.noteStarted(action.key);
  }
  if (action.kind === 'destroy') t.forget(action.key);
}
