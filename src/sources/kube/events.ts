/**
 * Kubernetes Events (core/v1, involvedObject = the Container) for what acetate does to a
 * container: Created, Resized, Replaced, Destroyed, failures...
 *
 * Best effort and never in the loop's way: record() only queues; a background worker posts.
 * Like client-go's EventCorrelator:
 * - the same event (object, type, reason, message) within dedupWindowMs is not posted again: the
 *   existing Event's count and lastTimestamp are patched;
 * - a token bucket per object (burst 25, one more token every refillMs) drops a flood (a crash
 *   loop), counting what it dropped;
 * - the queue is bounded (maxQueue; the oldest are dropped first).
 * Failures are counted and logged at debug level (a missing RBAC verb is logged once as a warning).
 */
import type { CoreV1Event } from '@kubernetes/client-node';
import type { ContainerEvent, EventRecorder } from '../../contracts/sinks.js';
import type { Clock } from '../../contracts/clock.js';
import { realClock } from '../../contracts/clock.js';
import { KubeApiError, type KubeApi, type KubeContainer } from './client.js';
import { API_VERSION, COMPONENT, KIND } from './constants.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import { terminalText } from '../../util/terminal-text.js';

export interface KubeEventRecorderOptions {
  api: KubeApi;
  node: string;
  /** The informer's copy of the object for a key; events for other keys are not posted. */
  lookup: (key: string) => KubeContainer | undefined;
  clock?: Clock;
  logger?: Logger;
  burst?: number;
  /** One token back per object every refillMs. Default 10 s. */
  refillMs?: number;
  /** Identical events within this window only bump count. Default 10 min. */
  dedupWindowMs?: number;
  maxQueue?: number;
}

interface Queued {
  key: string;
  obj: KubeContainer;
  event: ContainerEvent;
  at: number;
}

interface Posted {
  name: string;
  namespace: string;
  count: number;
  first: number;
  last: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const MAX_MESSAGE = 1024;

export class KubeEventRecorder implements EventRecorder {
  readonly stats = { posted: 0, patched: 0, dropped: 0, failed: 0 };
  private readonly queue: Queued[] = [];
  private readonly posted = new Map<string, Posted>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private worker?: Promise<void>;
  private seq = 0;
  private closed = false;
  private warnedForbidden = false;

  constructor(private readonly opts: KubeEventRecorderOptions) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
  }

  record(key: string, event: ContainerEvent): void {
    if (this.closed) return;
    const obj = this.opts.lookup(key);
    if (!obj) return;
    const now = this.clock.now();
    if (!this.take(key, now)) {
      this.stats.dropped += 1;
      this.log.debug(`event ${event.reason} for ${key} dropped: too many events for this object`);
      return;
    }
    this.queue.push({ key, obj, event, at: now });
    const max = this.opts.maxQueue ?? 1000;
    while (this.queue.length > max) {
      this.queue.shift();
      this.stats.dropped += 1;
    }
    this.ensureWorker();
  }

  /** Resolves when the queue is empty and nothing is being posted. */
  async flush(): Promise<void> {
    while (this.worker) await this.worker;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private ensureWorker(): void {
    if (this.worker) return;
    this.worker = this.drain().finally(() => {
      this.worker = undefined;
      if (this.queue.length && !this.closed) this.ensureWorker();
    });
  }

  private take(key: string, now: number): boolean {
    const burst = this.opts.burst ?? 25;
    const refill = this.opts.refillMs ?? 10_000;
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    const gained = Math.floor((now - b.at) / refill);
    if (gained > 0) {
      b.tokens = Math.min(burst, b.tokens + gained);
      b.at += gained * refill;
    }
    if (b.tokens <= 0) {
      this.buckets.set(key, b);
      return false;
    }
    b.tokens -= 1;
    this.buckets.set(key, b);
    return true;
  }

  private async drain(): Promise<void> {
    // Let the caller finish its turn first: recording never runs API calls synchronously.
    await Promise.resolve();
    while (this.queue.length) {
      const q = this.queue.shift()!;
      try {
        await this.post(q);
      } catch (err) {
        this.stats.failed += 1;
        const e = err as KubeApiError;
        if (e instanceof KubeApiError && e.code === 403 && !this.warnedForbidden) {
          this.warnedForbidden = true;
          this.log.warn(`cannot post Kubernetes Events (${e.message}); check the ClusterRole grants events create/patch`);
        } else this.log.debug(`event ${q.event.reason} for ${q.key} not posted: ${(err as Error).message}`);
      }
    }
  }

  private async post(q: Queued): Promise<void> {
    const { obj, event, at } = q;
    const namespace = obj.metadata.namespace ?? 'default';
    // Messages quote probes and registries; kubectl before 1.26 prints them raw: escaped, and
    // bounded with the truncation marker within MAX_MESSAGE.
    const message = terminalText(event.message, MAX_MESSAGE - 40);
    const dedupKey = `${obj.metadata.uid ?? q.key}\u0000${event.type}\u0000${event.reason}\u0000${message}`;
    const window = this.opts.dedupWindowMs ?? 10 * 60_000;
    this.expire(at, window);
    const prev = this.posted.get(dedupKey);
    if (prev && at - prev.last < window) {
      try {
        await this.opts.api.patchEvent(prev.namespace, prev.name, { count: prev.count + 1, lastTimestamp: new Date(at).toISOString() });
        prev.count += 1;
        prev.last = at;
        this.stats.patched += 1;
        return;
      } catch (err) {
        if (!(err instanceof KubeApiError && err.code === 404)) throw err;
        this.posted.delete(dedupKey); // the Event expired in the API server: post a new one
      }
    }
    const name = `${obj.metadata.name}.${(at * 1000 + (this.seq++ % 1000)).toString(16)}`;
    const body: CoreV1Event = {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion ?? API_VERSION,
        kind: obj.kind ?? KIND,
        name: obj.metadata.name,
        namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      reason: event.reason,
      message,
      type: event.type,
      count: 1,
      firstTimestamp: new Date(at),
      lastTimestamp: new Date(at),
      source: { component: COMPONENT, host: this.opts.node },
      reportingComponent: `${COMPONENT}.dev/${COMPONENT}`,
      reportingInstance: this.opts.node,
    };
    await this.opts.api.createEvent(namespace, body);
    this.posted.set(dedupKey, { name, namespace, count: 1, first: at, last: at });
    this.stats.posted += 1;
  }

  private expire(now: number, window: number): void {
    if (this.posted.size < 512) return;
    for (const [k, p] of this.posted) if (now - p.last >= window) this.posted.delete(k);
  }
}
