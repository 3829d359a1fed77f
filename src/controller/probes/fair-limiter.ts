/**
 * The prober's node-wide cap on checks, fair across containers, that a hanging check cannot hold.
 *
 * Why a cap at all: the kubelet gives every probe a worker of its own and no cap, but its exec
 * checks are calls into containerd; here each is a `runc exec` that costs ~14 ms of CPU to start.
 * Hundreds of them started at once (a loop adopting its containers, periods that line up) would
 * make each other time out (timeoutSeconds defaults to 1 s, counted from the check's start) and
 * fail probes of healthy containers. So at most `slots` checks are *starting* at once.
 *
 * Why a hanging check cannot hold a slot: a check keeps its slot until it ends or for
 * `releaseAfterMs`, whichever is first; after that it runs on (to its own timeoutSeconds) outside
 * the cap. What a slot bounds is the work of starting checks, which is over by then; what a
 * waiting check costs (its process, asleep) is bounded by the workers themselves: one check in
 * flight per probe, at most three per container. A tenant's hanging probes (timeoutSeconds may
 * be 86400) thus take a slot for releaseAfterMs once per timeout, never for the whole timeout.
 *
 * Why round-robin by container: when checks wait for a slot, each container with waiting checks
 * gets the next free slot in turn (its own checks in their order), so a container with many
 * probes, or many slow ones, gets the share of one container, never the whole node's. A
 * container's wait is bounded: (containers waiting / slots) turns of at most releaseAfterMs.
 *
 * Hand-written: p-limit and p-queue have neither per-key fairness nor slots that are given back
 * before their task ends.
 */
import type { Clock, TimerHandle } from '../../contracts/clock.js';

export interface FairLimiterOptions {
  slots: number;
  /** A check still running after this long gives its slot back (and runs on). */
  releaseAfterMs: number;
  clock: Clock;
}

interface Waiter {
  start: () => void;
  cancel: (reason: unknown) => void;
}

export class FairLimiter {
  private held = 0;
  /** Waiting checks by container, in the order containers get their turn (Map: insertion order). */
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(private readonly opts: FairLimiterOptions) {}

  /** Slots held now (checks starting or running within releaseAfterMs). */
  get activeCount(): number {
    return this.held;
  }

  /** Checks waiting for a slot, across all containers. */
  get pendingCount(): number {
    let n = 0;
    for (const q of this.waiting.values()) n += q.length;
    return n;
  }

  /**
   * Runs fn for container key once a slot is free and this container's turn has come. Rejects
   * with signal's reason, without running fn, if signal aborts while it waits.
   */
  run<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => waiter.cancel(signal!.reason);
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.held++;
          let released = false;
          const release = (): void => {
            if (released) return;
            released = true;
            this.opts.clock.clearTimeout(timer);
            this.held--;
            this.next();
          };
          const timer: TimerHandle = this.opts.clock.setTimeout(release, this.opts.releaseAfterMs);
          Promise.resolve().then(fn).then(resolve, reject).finally(release);
        },
        cancel: (reason) => {
          signal?.removeEventListener('abort', onAbort);
          const q = this.waiting.get(key);
          const i = q?.indexOf(waiter) ?? -1;
          if (i < 0) return; // started meanwhile
          q!.splice(i, 1);
          if (!q!.length) this.waiting.delete(key);
          reject(reason);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const q = this.waiting.get(key);
      if (q) q.push(waiter);
      else this.waiting.set(key, [waiter]);
      this.next();
    });
  }

  /** Starts waiting checks while slots are free: one per container per turn. */
  private next(): void {
    while (this.held < this.opts.slots && this.waiting.size > 0) {
      const [key, q] = this.waiting.entries().next().value as [string, Waiter[]];
      const w = q.shift()!;
      this.waiting.delete(key);
      if (q.length) this.waiting.set(key, q); // to the back of the ring
      w.start();
    }
  }
}
