/**
 * Writes container status to Container objects through the status subresource
 * (PUT /apis/acetate.dev/v1alpha1/namespaces/NS/containers/NAME/status), as a StatusSink.
 *
 * - Only a changed status is written: the status to write is compared with the freshest copy of
 *   the object acetate knows (the informer's, or the answer to its own last write when the watch
 *   has not delivered it yet).
 * - Conditions follow the API conventions: lastTransitionTime is kept from the stored condition
 *   when its status did not change (so a restart of acetate does not reset it), observedGeneration
 *   says which generation was looked at; for an object rejected by the node (invalid, infeasible)
 *   the generation that was rejected is observed.
 * - A resize the node cannot satisfy is ResizePending=True, reason Infeasible (Deferred comes from
 *   the loop when the kernel refused a resize for now).
 * - 409 Conflict: the object is read again and the status recomputed and compared before retrying;
 *   404: the object is gone, nothing to do; other failures are retried with backoff, the newest
 *   status replacing an older one still waiting. Writes per object are serialised and coalesced.
 * - publish() never throws and resolves when the status is written, found equal, or given up.
 *
 * It is a DetailedStatusSink for the loop: the loop calls remove(key) when a key has neither a
 * desired nor an actual container any more, which is exactly when a terminating object's
 * finalizer may go (onConverged).
 */
import type { Condition, ContainerStatus } from '../../api/types.js';
import { canonicalJson } from '../../api/hash.js';
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { realClock } from '../../contracts/clock.js';
import type { ResourceName } from '../../api/types.js';
import { KubeApiError, type KubeApi, type KubeContainer } from './client.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import { API_VERSION, KIND } from './constants.js';
import type { DetailedStatusSink } from '../../contracts/sinks.js';
import type { StatusRecord } from '../../contracts/status-record.js';

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
  /** The informer's copy of the object for a key; undefined when it is not a kube object of this node. */
  lookup: (key: string) => KubeContainer | undefined;
  verdict?: (key: string) => KeyVerdict | undefined;
  clock?: Clock;
  logger?: Logger;
  /** Called by remove(key): the loop found neither desired nor actual for key. */
  onConverged?: (key: string) => void;
  /** Re-reads after a 409 before giving up this round. Default 5. */
  maxConflicts?: number;
  /** Retry backoff after failures (not 409): base default 1 s, max default 60 s. */
  backoff?: { baseMs?: number; maxMs?: number };
}

interface KeyState {
  pending?: ContainerStatus;
  running?: Promise<void>;
  /** Answer to our last write, with the resourceVersion the object had before it. */
  lastResponse?: KubeContainer;
  rvBefore?: string;
  failures: number;
  retry?: TimerHandle;
  waiters: (() => void)[];
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
  private readonly states = new Map<string, KeyState>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: KubeStatusWriterOptions) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
  }

  publish(key: string, status: ContainerStatus): Promise<void> {
    if (this.closed || !this.opts.lookup(key)) return Promise.resolve();
    const st = this.state(key);
    st.pending = status;
    if (st.retry) return Promise.resolve(); // written by the scheduled retry; the caller does not wait for it
    const done = new Promise<void>((resolve) => st.waiters.push(resolve));
    this.kick(key, st);
    return done;
  }

  publishDetailed(record: StatusRecord): Promise<void> {
    return this.publish(record.key, record.status);
  }

  /** The loop's "this key has no desired and no actual container": lets a finalizer go. */
  async remove(key: string): Promise<void> {
    try {
      this.opts.onConverged?.(key);
    } catch (err) {
      this.log.error(`onConverged(${key}) failed: ${(err as Error).message}`);
    }
  }

  /** Forgets a key (its object is gone). */
  forget(key: string): void {
    const st = this.states.get(key);
    if (!st) return;
    if (st.retry) this.clock.clearTimeout(st.retry);
    st.pending = undefined;
    for (const w of st.waiters.splice(0)) w();
    if (!st.running) this.states.delete(key);
  }

  /** Resolves when no write is running or pending (retries scheduled later are not waited for). */
  async flush(): Promise<void> {
    for (;;) {
      const running = [...this.states.values()].map((s) => s.running).filter(Boolean);
      if (!running.length) return;
      await Promise.all(running);
    }
  }

  close(): void {
    this.closed = true;
    for (const key of [...this.states.keys()]) this.forget(key);
  }

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

  // ------------------------------------------------------------------ internals

  private state(key: string): KeyState {
    let st = this.states.get(key);
    if (!st) {
      st = { failures: 0, waiters: [] };
      this.states.set(key, st);
    }
    return st;
  }

  private kick(key: string, st: KeyState): void {
    if (st.running || st.retry) return;
    st.running = this.drain(key, st).finally(() => {
      st.running = undefined;
      if (st.pending && !st.retry && !this.closed) this.kick(key, st);
      else if (!st.pending) {
        for (const w of st.waiters.splice(0)) w();
        if (!st.retry && this.states.get(key) === st && !st.lastResponse) this.states.delete(key);
      }
    });
  }

  /** The freshest copy of the object: the informer's, unless it has not seen our last write yet. */
  private freshest(key: string, st: KeyState): KubeContainer | undefined {
    const cached = this.opts.lookup(key);
    if (!cached) return undefined;
    const resp = st.lastResponse;
    if (resp && resp.metadata.uid === cached.metadata.uid && cached.metadata.resourceVersion === st.rvBefore) return resp;
    return cached;
  }

  private async drain(key: string, st: KeyState): Promise<void> {
    while (st.pending && !this.closed) {
      const status = st.pending;
      st.pending = undefined;
      let obj = this.freshest(key, st);
      let conflicts = 0;
      for (;;) {
        if (!obj) return; // not (or no longer) a kube object of this node
        const next = this.compose(obj, status, key);
        if (equalStatus(obj.status, next)) {
          this.stats.skipped += 1;
          break;
        }
        try {
          const body: KubeContainer = { apiVersion: obj.apiVersion ?? API_VERSION, kind: obj.kind ?? KIND, metadata: obj.metadata, spec: obj.spec, status: next };
          const res = await this.opts.api.replaceContainerStatus(body);
          this.stats.writes += 1;
          st.rvBefore = obj.metadata.resourceVersion;
          st.lastResponse = res;
          st.failures = 0;
          break;
        } catch (err) {
          const e = err instanceof KubeApiError ? err : new KubeApiError(0, 'Unknown', String(err));
          if (e.code === 409 && conflicts < (this.opts.maxConflicts ?? 5)) {
            conflicts += 1;
            this.stats.conflicts += 1;
            const { namespace = 'default', name } = obj.metadata;
            try {
              const fresh = await this.opts.api.getContainer(namespace, name);
              if (!fresh) return;
              st.lastResponse = fresh;
              st.rvBefore = this.opts.lookup(key)?.metadata.resourceVersion;
              obj = fresh;
              continue;
            } catch (getErr) {
              this.retryLater(key, st, status, getErr);
              return;
            }
          }
          if (e.code === 404) {
            this.log.debug(`status of ${key} not written: the object is gone`);
            return;
          }
          if (e.code === 422 || e.code === 400) {
            this.stats.failures += 1;
            this.log.error(`the API server rejects the status of ${key}: ${e.message}`);
            return;
          }
          this.retryLater(key, st, status, e);
          return;
        }
      }
    }
  }

  private retryLater(key: string, st: KeyState, status: ContainerStatus, err: unknown): void {
    this.stats.failures += 1;
    st.failures += 1;
    if (!st.pending) st.pending = status;
    const base = this.opts.backoff?.baseMs ?? 1000;
    const max = this.opts.backoff?.maxMs ?? 60_000;
    const wait = Math.min(max, base * 2 ** Math.min(st.failures - 1, 20));
    this.log.warn(`cannot write the status of ${key} (${(err as Error).message}); retrying in ${wait} ms`);
    st.retry = this.clock.setTimeout(() => {
      st.retry = undefined;
      if (!this.closed) this.kick(key, st);
    }, wait);
    // the caller is not kept waiting for a retry
    for (const w of st.waiters.splice(0)) w();
  }
}
