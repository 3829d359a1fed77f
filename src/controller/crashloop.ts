/**
 * restartPolicy and crash-loop backoff, Kubernetes style.
 *
 * When a container's process has exited while its desired state is Running, the loop asks
 * decide(): restart now, restart later (CrashLoopBackOff), or never (the policy says so).
 *
 * - Always restarts after any exit; OnFailure only after a known non-zero exit code (an unknown
 *   one may have been 0: a job that may have succeeded is not run again); Never leaves the
 *   container exited.
 * - The n-th consecutive exit waits min(base · 2^(n-1), max) after the exit before the restart:
 *   10s, 20s, 40s … 5 min by default.
 * - A run that lasted at least resetAfter (10 min) resets the streak, so a container that runs
 *   for a long time and then exits is restarted after the base delay again.
 *
 * The streak lives in memory: a restarted acetate starts counting again (the restart count itself
 * is kept by the runtime).
 */
import type { RestartPolicy } from '../api/types.js';
import type { ProcessInfo } from '../runtime/runtime.js';
import { backoffDelay } from '../util/backoff.js';
import { formatDuration, realClock, type Clock } from '../contracts/clock.js';

export interface CrashLoopOptions {
  /** Delay after the first exit. Default 10s. */
  baseMs?: number;
  /** Cap. Default 5 min. */
  maxMs?: number;
  /** A run at least this long resets the streak. Default 10 min. */
  resetAfterMs?: number;
}

export const DEFAULT_CRASHLOOP = { baseMs: 10_000, maxMs: 5 * 60_000, resetAfterMs: 10 * 60_000 } as const;

export type RestartDecision =
  | { kind: 'now'; reason: string; streak: number }
  | { kind: 'later'; delayMs: number; at: number; reason: string; streak: number }
  | { kind: 'never'; reason: string };

/** Whether restartPolicy asks for a restart after an exit with exitCode (undefined: unknown, e.g. killed). */
export function policyAllowsRestart(policy: RestartPolicy, exitCode: number | undefined): boolean {
  switch (policy) {
    case 'Always':
      return true;
    case 'OnFailure':
      return exitCode !== undefined && exitCode !== 0;
    case 'Never':
      return false;
  }
}

interface Entry {
  /** Identity of the last exit seen, so one exit is counted once however often it is reconciled. */
  exitId?: string;
  streak: number;
  restartAt?: number;
  delayMs?: number;
  lastStartAt?: number;
}

export interface ExitObservation {
  policy: RestartPolicy;
  process: ProcessInfo;
  /** The runtime's restart count, part of the identity of an exit. */
  restartCount?: number;
}

function parseTime(t: string | undefined): number | undefined {
  if (!t) return undefined;
  const n = Date.parse(t);
  return Number.isNaN(n) ? undefined : n;
}

function describeExit(p: ProcessInfo): string {
  return p.exitCode === undefined ? 'exited (exit code unknown)' : `exited with code ${p.exitCode}`;
}

export class CrashLoopTracker {
  private readonly opts: Required<CrashLoopOptions>;
  private entries = new Map<string, Entry>();

  constructor(opts: CrashLoopOptions = {}, private readonly clock: Clock = realClock) {
    this.opts = {
      baseMs: opts.baseMs ?? DEFAULT_CRASHLOOP.baseMs,
      maxMs: opts.maxMs ?? DEFAULT_CRASHLOOP.maxMs,
      resetAfterMs: opts.resetAfterMs ?? DEFAULT_CRASHLOOP.resetAfterMs,
    };
  }

  get options(): Readonly<Required<CrashLoopOptions>> {
    return this.opts;
  }

  /** Decides what to do about an exited process whose desired state is Running. */
  decide(key: string, obs: ExitObservation): RestartDecision {
    const p = obs.process;
    if (!policyAllowsRestart(obs.policy, p.exitCode)) {
      return { kind: 'never', reason: `${describeExit(p)}; restartPolicy ${obs.policy} does not restart it` };
    }
    const now = this.clock.now();
    const entry = this.entries.get(key) ?? { streak: 0 };
    const exitId = `${obs.restartCount ?? ''}|${p.startedAt ?? ''}|${p.finishedAt ?? ''}|${p.exitCode ?? ''}|${p.pid ?? ''}`;
    if (entry.exitId !== exitId || entry.restartAt === undefined) {
      const startedAt = parseTime(p.startedAt) ?? entry.lastStartAt;
      const exitAt = parseTime(p.finishedAt) ?? now;
      if (startedAt !== undefined && exitAt - startedAt >= this.opts.resetAfterMs) entry.streak = 0;
      entry.streak += 1;
      entry.delayMs = backoffDelay(entry.streak, { baseMs: this.opts.baseMs, maxMs: this.opts.maxMs });
      entry.restartAt = exitAt + entry.delayMs;
      entry.exitId = exitId;
      this.entries.set(key, entry);
    }
    const at = entry.restartAt;
    if (now >= at) {
      return { kind: 'now', reason: `${describeExit(p)}; restarting (restartPolicy ${obs.policy})`, streak: entry.streak };
    }
    const delayMs = at - now;
    return {
      kind: 'later',
      delayMs,
      at,
      streak: entry.streak,
      reason: `back-off ${formatDuration(entry.delayMs ?? delayMs)} restarting failed container: ${describeExit(p)}`,
    };
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

  /** Forgets key (destroyed, replaced, or its spec changed). */
  forget(key: string): void {
    this.entries.delete(key);
  }
}
