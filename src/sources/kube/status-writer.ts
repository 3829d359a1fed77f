/**
 * Writes container status to Container objects through the status subresource
 * (PUT /apis/acetate.dev/v1alpha1/namespaces/NS/containers/NAME/status), as a step of the loop's
 * reconcile (a DetailedStatusSink).
 *
 * - Only a changed status is written: the status to write is compared with the freshest copy of
 *   the object acetate knows (LatestObjects: the informer's, or the answer to its own last write
 *   when the watch has not delivered it yet).
 * - Conditions follow the API conventions: lastTransitionTime is kept from the stored condition
 *   when its status did not change (so a restart of acetate does not reset it), observedGeneration
 *   says which generation was looked at; for an object rejected by the node (invalid, infeasible)
 *   the generation that was rejected is observed.
 * - A resize the node cannot satisfy is ResizePending=True, reason Infeasible (Deferred comes from
 *   the loop when the kernel refused a resize for now).
 * - One attempt per call; a failure is thrown as a typed failure (see api-failure.ts) and the
 *   queue decides: a 409 is retried at once on a re-read object, a 404 is done, a 422 waits for a
 *   change, anything else backs off. No timer, no retry state here: the loop calls again with the
 *   newest status, so nothing older is ever written.
 */
import type { Condition, ContainerStatus } from '../../api/types.js';
import { canonicalJson } from '../../api/hash.js';
import type { Clock } from '../../contracts/clock.js';
import { realClock } from '../../contracts/clock.js';
import type { ResourceName } from '../../api/types.js';
import type { KubeApi, KubeContainer } from './client.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import { API_VERSION, KIND } from './constants.js';
import type { DetailedStatusSink } from '../../contracts/sinks.js';
import type { StatusRecord } from '../../contracts/status-record.js';
import { kubeFailure } from './api-failure.js';
import type { LatestObjects } from './latest-objects.js';

/** What the source knows about a key that the loop's status may not say. */
export interface KeyVerdict {
  /** The generation the source rejected (invalid or infeasible), when it did. */
  rejectedGeneration?: number;
  /** Resources the node cannot satisfy. */
  infeasible?: ResourceName[];
  /** Message for the Infeasible condition. */
  message?: string;
}

export interface KubeStatusWriterOptions {
  api: KubeApi;
  /** The freshest copies of the objects (shared with the finalizer writes). */
  objects: LatestObjects;
  verdict?: (key: string) => KeyVerdict | undefined;
  clock?: Clock;
  logger?: Logger;
}

function equalStatus(a: ContainerStatus | undefined, b: ContainerStatus | undefined): boolean {
  return canonicalJson(a ?? {}) === canonicalJson(b ?? {});
}

function clean<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export class KubeStatusWriter implements DetailedStatusSink {
  /** Counters for tests and metrics. */
  readonly stats = { writes: 0, skipped: 0, conflicts: 0, failures: 0 };
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly opts: KubeStatusWriterOptions) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
  }

  /** Writes status unless the object already says it. Keys that are not kube objects of this node are ignored. */
  async publish(key: string, status: ContainerStatus): Promise<void> {
    const { objects } = this.opts;
    if (!objects.get(key)) return;
    const obj = await objects.current(key);
    if (!obj) return; // deleted meanwhile
    const next = this.compose(obj, status, key);
    if (equalStatus(obj.status, next)) {
      this.stats.skipped += 1;
      return;
    }
    const body: KubeContainer = { apiVersion: obj.apiVersion ?? API_VERSION, kind: obj.kind ?? KIND, metadata: obj.metadata, spec: obj.spec, status: next };
    try {
      objects.record(key, await this.opts.api.replaceContainerStatus(body));
      this.stats.writes += 1;
    } catch (err) {
      const failure = kubeFailure(err, `cannot write the status of ${key}`);
      if (failure.kind === 'conflict') {
        this.stats.conflicts += 1;
        objects.markStale(key);
      } else if (failure.kind !== 'gone') {
        this.stats.failures += 1;
      }
      if (failure.kind === 'transient' || failure.kind === 'invalid') this.log.warn(failure.message, { kind: failure.kind });
      else this.log.debug(failure.message, { kind: failure.kind });
      throw failure;
    }
  }

  publishDetailed(record: StatusRecord): Promise<void> {
    return this.publish(record.key, record.status);
  }

  /** Nothing to remove: the status goes with its object. */
  async remove(): Promise<void> {}

  /** The status that would be written for key given the stored object (pure; exported for tests). */
  compose(obj: KubeContainer, status: ContainerStatus, key: string): ContainerStatus {
    const out: ContainerStatus = clean(status);
    const stored = obj.status?.conditions ?? [];
    const nowIso = new Date(this.clock.now()).toISOString();
    const verdict = this.opts.verdict?.(key);
    const gen = obj.metadata.generation;
    if (out.observedGeneration === undefined && verdict?.rejectedGeneration !== undefined && verdict.rejectedGeneration === gen) {
      out.observedGeneration = gen;
      out.conditions = (out.conditions ?? []).map((c) => ({ ...c, observedGeneration: gen }));
    }
    if (verdict?.infeasible?.length && (out.phase === 'Running' || out.pid !== undefined)) {
      const c: Condition = {
        type: 'ResizePending',
        status: 'True',
        reason: 'Infeasible',
        message: verdict.message ?? `${verdict.infeasible.join(', ')}: more than the node has`,
      };
      if (out.observedGeneration !== undefined) c.observedGeneration = out.observedGeneration;
      out.conditions = [...(out.conditions ?? []).filter((x) => x.type !== 'ResizePending'), c];
    }
    if (out.conditions) {
      out.conditions = out.conditions.map((c) => {
        const prev = stored.find((p) => p.type === c.type);
        const lastTransitionTime = prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : (c.lastTransitionTime ?? nowIso);
        return { ...c, lastTransitionTime };
      });
    }
    return out;
  }
}
