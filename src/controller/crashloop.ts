/**
 * Crash-loop bookkeeping, Kubernetes style: the streak of consecutive exits of each key and when
 * its restart is due. It decides nothing: the plan weighs these facts (plan/restart.ts holds the
 * restart-policy rule and the gating), and the loop does what the plan says.
 *
 * - The n-th consecutive exit waits min(base · 2^(n-1), max) after the exit before the restart:
 *   10s, 20s, 40s … 5 min by default.
 * - A run that lasted at least resetAfter (10 min) resets the streak, so a container that runs
 *   for a long time and then exits is restarted after the base delay again.
 * - The state is published in each container's status record (toRecord), so `acetate plan` sees
 *   the same back-off and a restarted `acetate run` goes on counting (seed).
 */
import type { ActualContainer } from '../runtime/runtime.js';
import { exitIdentity, type RestartBackoff } from '../plan/restart.js';
import { backoffDelay } from '../util/backoff.js';
import { realClock, type Clock } from '../contracts/clock.js';
import type { CrashLoopRecord } from '../contracts/status-record.js';

export interface CrashLoopOptions {
  /** Delay after the first exit. Default 10s. */
  baseMs?: number;
  /** Cap. Default 5 min. */
  maxMs?: number;
  /** A run at least this long resets the streak. Default 10 min. */
  resetAfterMs?: number;
}

export const DEFAULT_CRASHLOOP = { baseMs: 10_000, maxMs: 5 * 60_000, resetAfterMs: 10 * 60_000 } as const;

interface Entry {
  /** The container (AppliedRecord.createdAt) the streak is of. */
  incarnation?: string;
  /** Identity of the last exit seen, so one exit is counted once however often it is reconciled. */
  exitId?: string;
  streak: number;
  restartAt?: number;
  delayMs?: number;
  lastStartAt?: number;
}

function parseTime(t: string | undefined): number | undefined {
  if (!t) return undefined;
  const n = Date.parse(t);
  return Number.isNaN(n) ? undefined : n;
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

export class CrashLoopTracker {
  private readonly opts: Required<CrashLoopOptions>;
  private entries = new Map<string, Entry>();

  constructor(
    opts: CrashLoopOptions = {},
    private readonly clock: Clock = realClock,
  ) {
    this.opts = {
      baseMs: opts.baseMs ?? DEFAULT_CRASHLOOP.baseMs,
      maxMs: opts.maxMs ?? DEFAULT_CRASHLOOP.maxMs,
      resetAfterMs: opts.resetAfterMs ?? DEFAULT_CRASHLOOP.resetAfterMs,
    };
  }

  get options(): Readonly<Required<CrashLoopOptions>> {
    return this.opts;
  }

  /**
   * Counts the exit of `a`'s process (once per exit) and returns the back-off facts of it, for
   * the plan. Call it for an exited process whose desired state is Running.
   */
  observe(a: ActualContainer): RestartBackoff {
    const p = a.process;
    const now = this.clock.now();
    const incarnation = a.applied.createdAt;
    let entry = this.entries.get(a.key);
    if (!entry || (entry.incarnation !== undefined && entry.incarnation !== incarnation)) entry = { streak: 0 };
    entry.incarnation = incarnation;
    const exitId = exitIdentity(p, a.restartCount);
    if (entry.exitId !== exitId || entry.restartAt === undefined) {
      const startedAt = parseTime(p.startedAt) ?? entry.lastStartAt;
      const exitAt = parseTime(p.finishedAt) ?? now;
      if (startedAt !== undefined && exitAt - startedAt >= this.opts.resetAfterMs) entry.streak = 0;
      entry.streak += 1;
      entry.delayMs = backoffDelay(entry.streak, { baseMs: this.opts.baseMs, maxMs: this.opts.maxMs });
      entry.restartAt = exitAt + entry.delayMs;
      entry.exitId = exitId;
    }
    this.entries.set(a.key, entry);
    return { exitId, streak: entry.streak, restartAt: entry.restartAt, delayMs: entry.delayMs ?? this.opts.baseMs };
  }

  /** Records that the loop (re)started the process now. */
  noteStarted(key: string): void {
    const entry = this.entries.get(key) ?? { streak: 0 };
    entry.lastStartAt = this.clock.now();
    entry.restartAt = undefined;
    this.entries.set(key, entry);
  }

  /** Consecutive exits counted for key. */
  streak(key: string): number {
    return this.entries.get(key)?.streak ?? 0;
  }

  /** When a pending restart of key is due (epoch ms). */
  restartAt(key: string): number | undefined {
    return this.entries.get(key)?.restartAt;
  }

  /** Forgets key (destroyed, replaced, or created again). */
  forget(key: string): void {
    this.entries.delete(key);
  }

  /** The bookkeeping of key as the status record carries it (undefined: nothing counted). */
  toRecord(key: string): CrashLoopRecord | undefined {
    const e = this.entries.get(key);
    if (!e || e.streak === 0) return undefined;
    const out: CrashLoopRecord = { streak: e.streak };
    if (e.incarnation !== undefined) out.incarnation = e.incarnation;
    if (e.exitId !== undefined) out.exitId = e.exitId;
    if (e.restartAt !== undefined) out.restartAt = iso(e.restartAt);
    if (e.delayMs !== undefined) out.delayMs = e.delayMs;
    if (e.lastStartAt !== undefined) out.lastStartAt = iso(e.lastStartAt);
    return out;
  }

  /** Takes up the bookkeeping a previous `acetate run` published (it goes on counting the streak). */
  seed(key: string, r: CrashLoopRecord): void {
    if (this.entries.has(key) || !(r.streak > 0)) return;
    const entry: Entry = { streak: r.streak };
    if (r.incarnation !== undefined) entry.incarnation = r.incarnation;
    if (r.exitId !== undefined) entry.exitId = r.exitId;
    const restartAt = parseTime(r.restartAt);
    if (restartAt !== undefined) entry.restartAt = restartAt;
    if (r.delayMs !== undefined) entry.delayMs = r.delayMs;
    const lastStartAt = parseTime(r.lastStartAt);
    if (lastStartAt !== undefined) entry.lastStartAt = lastStartAt;
    this.entries.set(key, entry);
  }
}

/**
 * The back-off facts of a published record, for a plan made by another process (`acetate plan`):
 * only a pending restart, of the container that exists now. The plan honours them only when the
 * exit they are about is still the process's last one.
 */
export function backoffFromRecord(r: CrashLoopRecord | undefined, incarnation: string | undefined): RestartBackoff | undefined {
  if (!r?.exitId || r.restartAt === undefined || r.delayMs === undefined) return undefined;
  if (r.incarnation !== undefined && r.incarnation !== incarnation) return undefined;
  const restartAt = parseTime(r.restartAt);
  if (restartAt === undefined) return undefined;
  return { exitId: r.exitId, streak: r.streak, restartAt, delayMs: r.delayMs };
}

/** backoffFromRecord over the published records of the containers that exist (`acetate plan`). */
export function backoffFacts(
  records: { key: string; crashLoop?: CrashLoopRecord }[],
  actual: ReadonlyMap<string, ActualContainer>,
): Map<string, RestartBackoff> {
  const out = new Map<string, RestartBackoff>();
  for (const r of records) {
    const a = actual.get(r.key);
    const f = a ? backoffFromRecord(r.crashLoop, a.applied.createdAt) : undefined;
    if (f) out.set(r.key, f);
  }
  return out;
}
