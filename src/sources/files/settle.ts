/**
 * Files read while too young to be cached, read again once they are not.
 *
 * A file read soon after a change is too young for its stamp to identify its content (see
 * util/stat-cache.ts), so the manifest cache keeps nothing of it: every later read, and every
 * `acetate plan`, parsed it again until the next re-list, minutes later (2,100 new files made a
 * no-op plan at 2,500 take 0.5 s instead of 0.3 s). This waits until each such file is old
 * enough and, if it is still the file that was read (same stamp: one changed since comes with
 * its own watcher batch, and may be half written now), hands it back to be read once more and
 * kept. One timer for all of them, armed for the earliest.
 */
import { statSync } from 'node:fs';
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { RACY_MS, sameStamp, settled, stampOf, type FileStamp } from '../../util/stat-cache.js';

/** Past the age at which a stamp identifies its content, a file is read again. */
const MARGIN_MS = 1_000;
/** A stamp further ahead than this (a clock set back, a file dated in the future) is left to the re-list. */
const MAX_WAIT_MS = 60_000;

export class Settler {
  private readonly pending = new Map<string, FileStamp>();
  private timer?: TimerHandle;

  constructor(
    private readonly o: {
      clock: Clock;
      /** Called with files old enough now, unchanged since they were added. */
      onDue: (files: string[]) => void;
      /** Wall time, as the files' stamps are (tests may give another). */
      now?: () => number;
    },
  ) {}

  /** Files just read and not kept by the cache. */
  add(files: readonly string[]): void {
    for (const f of files) {
      const st = statSync(f, { throwIfNoEntry: false });
      if (st) this.pending.set(f, stampOf(st));
    }
    this.arm();
  }

  /** Forgets every file and its timer (a FileSource stopped; it may start again). */
  stop(): void {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private arm(): void {
    if (this.timer || this.pending.size === 0) return;
    let due = Infinity;
    for (const s of this.pending.values()) due = Math.min(due, changedAt(s) + RACY_MS + MARGIN_MS);
    const wait = Math.min(Math.max(due - this.now(), MARGIN_MS), MAX_WAIT_MS);
    this.timer = this.o.clock.setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.now();
    const due: string[] = [];
    for (const [file, stamp] of this.pending) {
      const st = statSync(file, { throwIfNoEntry: false });
      if (!st || !sameStamp(stamp, st))
        this.pending.delete(file); // removed, or changed: its batch reads it
      else if (settled(st, now)) {
        this.pending.delete(file);
        due.push(file);
      } else if (changedAt(stamp) - now > MAX_WAIT_MS) this.pending.delete(file);
    }
    if (due.length) this.o.onDue(due);
    this.arm();
  }
}

function changedAt(s: FileStamp): number {
  return Math.max(s.mtimeMs, s.ctimeMs);
}
