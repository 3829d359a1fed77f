/**
 * A task run every `ms` on an injected clock, one run at a time: the next run is scheduled when
 * the last has settled, so a slow run is never overlapped by the next (the loop's resync and its
 * process poll).
 */
import type { Clock, TimerHandle } from '../contracts/clock.js';

export interface PeriodicOptions {
  clock: Clock;
  /** Period; 0 or less: never runs. */
  ms: number;
  run: () => Promise<unknown>;
  /** A run that failed (the next is scheduled all the same). */
  onError: (err: unknown) => void;
}

export class Periodic {
  private timer?: TimerHandle;
  private inFlight?: Promise<void>;
  private cancelled = false;

  constructor(private readonly opts: PeriodicOptions) {}

  /** Schedules the first run, one period from now. */
  start(): void {
    if (this.opts.ms <= 0 || this.cancelled) return;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      // A run that throws before returning its promise is an error like any other, and the
      // next run is scheduled all the same. It starts here, synchronously, as the timer fires.
      let started: Promise<unknown>;
      try {
        started = this.opts.run();
      } catch (err) {
        started = Promise.reject(err);
      }
      this.inFlight = started
        .then(() => undefined, this.opts.onError)
        .finally(() => {
          this.inFlight = undefined;
          this.start();
        });
    }, this.opts.ms);
  }

  /** No further run is scheduled; a run in flight goes on (see settled). */
  cancel(): void {
    this.cancelled = true;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resolves when no run is in flight. */
  async settled(): Promise<void> {
    await this.inFlight;
  }
}
