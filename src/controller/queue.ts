/**
 * The work queue of the loop, in the manner of client-go's rate-limited work queue.
 *
 * - Items are keys (`namespace/name`) only: what to do is decided when the key is processed, by
 *   re-reading desired and actual state (level-triggered), so duplicates simply collapse.
 * - A key is never handed to two workers at once: a key added while it is being processed is
 *   queued again when its worker calls done().
 * - done(key, result) is the ONE place that decides what happens after a reconcile: forget
 *   (success), retry with per-key exponential backoff, retry after a given delay, or park the key
 *   (terminal error) until the next change of that key.
 * - Time comes from an injected Clock, so tests drive it.
 */
import { KeyedBackoff, type BackoffOptions } from '../util/backoff.js';
import { realClock, type Clock, type TimerHandle } from '../contracts/clock.js';
import { IMMEDIATE_RETRIES, type Requeue } from './requeue.js';

/**
 * Why a key is added. `change`: its desired state may have changed (wakes a parked key, skips its
 * backoff). `resync`: periodic full resync (does not wake a parked key nor cut a backoff short).
 * `retry`: a delayed add that came due.
 */
export type AddCause = 'change' | 'resync' | 'retry';

export interface WorkQueueOptions {
  clock?: Clock;
  backoff?: BackoffOptions;
}

/** What done() decided, for logs and status. */
export interface Decision {
  key: string;
  action: 'forget' | 'retry' | 'park' | 'requeue-now';
  /** Delay before the key is processed again (retry). */
  delayMs?: number;
}

interface Delayed {
  at: number;
  handle: TimerHandle;
  /** True when the delay is an error backoff (a resync must not cut it short). */
  backoff: boolean;
}

export class WorkQueue {
  readonly clock: Clock;
  private readonly backoff: KeyedBackoff;
  /** Keys ready to be handed out, in order. */
  private queue: string[] = [];
  /** Keys that need processing (queued, or to be queued when their worker is done). */
  private dirty = new Set<string>();
  /** In-flight keys re-added by something other than a resync while being processed. */
  private strongDirty = new Set<string>();
  private inFlight = new Set<string>();
  private delayed = new Map<string, Delayed>();
  /** Keys that ended in a terminal error: only a change wakes them. */
  private parked = new Set<string>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private shuttingDown = false;
  /** Consecutive `now` requeues (conflicts) per key. */
  private immediate = new Map<string, number>();

  constructor(opts: WorkQueueOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.backoff = new KeyedBackoff(opts.backoff);
  }

  /** Marks key as needing a reconcile. */
  add(key: string, cause: AddCause = 'change'): void {
    if (this.shuttingDown) return;
    if (cause === 'resync') {
      if (this.parked.has(key)) return;
      const d = this.delayed.get(key);
      if (d?.backoff) return;
    } else if (cause === 'change') {
      this.parked.delete(key);
    }
    // Any pending delayed add is superseded by this one.
    this.cancelDelayed(key);
    if (this.inFlight.has(key) && cause !== 'resync') this.strongDirty.add(key);
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.inFlight.has(key)) return; // queued again by done()
    this.push(key);
  }

  /** Adds key after ms. If the key is already due earlier, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    this.schedule(key, ms, false);
  }

  /**
   * Waits for a key to process; undefined once the queue is shut down. The caller must call
   * done(key, result) when finished with it.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Non-blocking get: a key, or undefined when none is ready. */
  tryGet(): string | undefined {
    if (this.shuttingDown) return undefined;
    return this.take();
  }

  /** The one place deciding what happens to a key after it was processed. */
  done(key: string, result: Requeue): Decision {
    if (!this.inFlight.delete(key)) throw new Error(`done(${key}) called for a key that is not being processed`);
    let decision: Decision;
    switch (result.kind) {
      case 'done':
        this.backoff.reset(key);
        decision = { key, action: 'forget' };
        break;
      case 'after':
        this.backoff.reset(key);
        decision = { key, action: 'retry', delayMs: Math.max(0, result.ms) };
        break;
      case 'backoff':
        decision = { key, action: 'retry', delayMs: this.backoff.next(key) };
        break;
      case 'terminal':
        this.backoff.reset(key);
        decision = { key, action: 'park' };
        break;
      case 'now': {
        // A conflict is retried at once, re-reading everything; a key that keeps losing the race
        // (IMMEDIATE_RETRIES in a row) backs off like any failure, so it cannot spin.
        const n = (this.immediate.get(key) ?? 0) + 1;
        this.immediate.set(key, n);
        decision = n <= IMMEDIATE_RETRIES ? { key, action: 'retry', delayMs: 0 } : { key, action: 'retry', delayMs: this.backoff.next(key) };
        break;
      }
    }
    if (result.kind !== 'now') this.immediate.delete(key);
    const strong = this.strongDirty.delete(key);
    if (this.dirty.has(key) && !strong && (result.kind === 'backoff' || result.kind === 'terminal')) {
      // Only a periodic resync re-added it while it was failing: that must not cut its backoff
      // short nor wake a parked key.
      this.dirty.delete(key);
    }
    if (this.dirty.has(key)) {
      // Re-added (by a change, or a due retry) while processing: new information, process it again now.
      this.push(key);
      decision = { key, action: 'requeue-now' };
    } else if (decision.action === 'retry') {
      this.schedule(key, decision.delayMs ?? 0, result.kind === 'backoff');
    } else if (decision.action === 'park') {
      this.parked.add(key);
    }
    this.maybeIdle();
    return decision;
  }

  /** Forgets everything about key (e.g. the container is gone and no longer desired). */
  forget(key: string): void {
    this.backoff.reset(key);
    this.immediate.delete(key);
    this.parked.delete(key);
    this.cancelDelayed(key);
  }

  /** Stops handing out keys: waiting get()s resolve undefined, delayed adds are dropped. */
  shutdown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const key of [...this.delayed.keys()]) this.cancelDelayed(key);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(undefined);
    this.maybeIdle();
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Keys ready to be processed (the queue depth). */
  len(): number {
    return this.queue.length;
  }

  /** Keys waiting for a delayed add. */
  delayedCount(): number {
    return this.delayed.size;
  }

  processingCount(): number {
    return this.inFlight.size;
  }

  isProcessing(key: string): boolean {
    return this.inFlight.has(key);
  }

  isParked(key: string): boolean {
    return this.parked.has(key);
  }

  /** Consecutive failures of key (its backoff level). */
  failures(key: string): number {
    return this.backoff.count(key);
  }

  /** When key is due again if it is waiting on a delayed add (epoch ms). */
  dueAt(key: string): number | undefined {
    return this.delayed.get(key)?.at;
  }

  /** True when nothing is queued or being processed (delayed adds may still be pending). */
  isIdle(): boolean {
    return this.queue.length === 0 && this.inFlight.size === 0;
  }

  /** Resolves when nothing is queued or being processed. */
  whenIdle(): Promise<void> {
    if (this.isIdle() || (this.shuttingDown && this.inFlight.size === 0)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private take(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.dirty.delete(key);
    this.inFlight.add(key);
    return key;
  }

  private push(key: string): void {
    this.queue.push(key);
    while (this.waiters.length > 0 && this.queue.length > 0) {
      const w = this.waiters.shift()!;
      w(this.take());
    }
  }

  private schedule(key: string, ms: number, isBackoff: boolean): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key, 'retry');
      return;
    }
    const at = this.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) {
      existing.backoff = existing.backoff || isBackoff;
      return;
    }
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      const cur = this.delayed.get(key);
      if (cur?.handle !== handle) return;
      this.delayed.delete(key);
      this.add(key, 'retry');
    }, ms);
    this.delayed.set(key, { at, handle, backoff: isBackoff });
  }

  private cancelDelayed(key: string): void {
    const d = this.delayed.get(key);
    if (!d) return;
    this.clock.clearTimeout(d.handle);
    this.delayed.delete(key);
  }

  private maybeIdle(): void {
    if (!(this.isIdle() || (this.shuttingDown && this.inFlight.size === 0))) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }
}
