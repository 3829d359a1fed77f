/**
 * What `acetate apply` did, recorded in the status store the way the loop records a reconcile
 * (same StatusPublisher, same conditions): a PortInUse or SubnetFull failure shows in `acetate
 * get` (STATUS) and `describe` (Last error) with no `acetate run` alive, and a key that
 * succeeded loses the error an earlier apply left. Apply holds the node lock, so no loop writes
 * the same records meanwhile.
 */
import type { Plan } from '../plan/plan.js';
import type { ApplySummary } from '../apply/apply.js';
import type { Runtime } from '../runtime/runtime.js';
import type { MergedSnapshot } from '../controller/merge-sources.js';
import { StatusPublisher } from '../controller/publish.js';
import { StatusStore } from '../controller/status-store.js';
import { requeueFor } from '../controller/requeue.js';
import { retryOf } from '../controller/run-actions.js';
import type { ReconcileError } from '../controller/status.js';
import { messageOf } from '../contracts/errors.js';
import { silentLogger } from '../contracts/logger.js';
import { pullWaiting } from '../controller/image-pull.js';
import type { ImagePullError } from '../images/errors.js';

export async function recordApplyStatus(
  p: Plan,
  summary: ApplySummary,
  o: { stateDir: string; runtime: Runtime; snapshot: MergedSnapshot; nodeName: string; now?: () => number },
): Promise<void> {
  const now = o.now ?? Date.now;
  const store = new StatusStore(o.stateDir);
  const publisher = new StatusPublisher([store], { nodeName: o.nodeName, now, logger: silentLogger });
  const previous = new Map((await store.load()).map((r) => [r.key, r]));
  publisher.seed([...previous.values()]);
  const destroyed = new Set(summary.results.filter((r) => r.outcome === 'destroyed').map((r) => r.key));
  const errors = new Map(summary.errors.map((e) => [e.key, e]));
  const time = new Date(now()).toISOString();
  // One list for every key (cheap reads; no CNI CHECK per container as get() would run).
  const actuals = new Map((await o.runtime.list()).map((a) => [a.key, a]));
  for (const key of [...new Set(p.actions.map((a) => a.key))]) {
    if (destroyed.has(key)) continue;
    const failed = errors.get(key);
    let error: ReconcileError | undefined;
    if (failed) {
      const cause = failed.cause;
      const reason = (cause as { reason?: unknown } | undefined)?.reason;
      const retry = retryOf(requeueFor(failed));
      error = { message: messageOf(cause), action: failed.kind, retry, ...(typeof reason === 'string' ? { reason } : {}) };
      publisher.setError(key, { message: error.message, action: failed.kind, retry, time, failures: 1 });
      publisher.remember(key, { kind: failed.kind, outcome: 'error', time, error: error.message });
    }
    for (const r of summary.results.filter((x) => x.key === key)) publisher.remember(key, { kind: r.kind, outcome: r.outcome, time, durationMs: r.durationMs });
    const actual = actuals.get(key);
    // The loop's crash-loop streak is its to keep (a restarted loop goes on counting from it).
    const crashLoop = previous.get(key)?.crashLoop;
    await publisher.publish(key, {
      desired: o.snapshot.containers.get(key),
      actual,
      snap: o.snapshot,
      ...(error ? { error } : {}),
      ...(crashLoop ? { crashLoop } : {}),
      deferred: [],
    });
  }
  await store.flush();
}

/**
 * Containers apply left waiting on their image (a pull that failed, a registry that did not answer
 * in time): their records say so, so `get NAME` and `describe` show the reason (ErrImagePull,
 * ErrImageNeverPull) though no container exists, as kubectl shows a pod that waits.
 */
export async function recordImageWaiting(
  errors: Map<string, ImagePullError>,
  o: { stateDir: string; runtime: Runtime; snapshot: MergedSnapshot; nodeName: string; now?: () => number },
): Promise<void> {
  const now = o.now ?? Date.now;
  const store = new StatusStore(o.stateDir);
  const publisher = new StatusPublisher([store], { nodeName: o.nodeName, now, logger: silentLogger });
  publisher.seed(await store.load());
  const time = new Date(now()).toISOString();
  for (const [key, err] of errors) {
    const retry = retryOf(requeueFor(err));
    const error: ReconcileError = { message: err.message, action: 'pull', retry, reason: err.reason };
    publisher.setError(key, { message: err.message, action: 'pull', retry, time, failures: 1 });
    const actual = await o.runtime.get(key);
    // A container that runs keeps running what it runs: its Ready condition stays as it is (as in the loop).
    const waiting = actual?.process.state === 'running' ? undefined : pullWaiting(err, 0);
    await publisher.publish(key, { desired: o.snapshot.containers.get(key), actual, snap: o.snapshot, error, ...(waiting ? { waiting } : {}), deferred: [] });
  }
  await store.flush();
}
