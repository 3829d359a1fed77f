/**
 * Time, injected. Everything in the loop that waits (queue delays, backoff, crash-loop restarts,
 * periodic resyncs) goes through a Clock, so unit tests drive time with FakeClock.advance() and
 * never sleep.
 */

export type TimerHandle = object;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The wall clock and Node's timers. Timers are unref'd only when asked (the loop keeps the process alive). */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to. advance(ms) fires, in time order, every timer due up to
 * now + ms (including timers scheduled by those timers while advancing).
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private timers = new Map<number, FakeTimer>();

  constructor(start = Date.UTC(2024, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { id, at: this.current + Math.max(0, ms), fn });
    return { id } as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    const id = (handle as { id?: number }).id;
    if (id !== undefined) this.timers.delete(id);
  }

  /** Number of timers not yet fired. */
  pending(): number {
    return this.timers.size;
  }

  /** When the next timer is due, or undefined when there is none. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.timers.values()) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /** Moves time forward by ms, firing due timers in order. */
  advance(ms: number): void {
    const target = this.current + Math.max(0, ms);
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.timers.values()) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      }
      if (!next) break;
      this.timers.delete(next.id);
      if (next.at > this.current) this.current = next.at;
      next.fn();
    }
    this.current = target;
  }

  /** Sets the time (forward only) and fires due timers. */
  set(time: number): void {
    this.advance(time - this.current);
  }
}
