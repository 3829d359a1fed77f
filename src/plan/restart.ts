/**
 * The restart of a process that exited while its desired state is Running: the ONE place that
 * decides it, for `acetate plan`, `apply` and `run` alike. Pure: time and the crash-loop back-off
 * come in as data (the loop's CrashLoopTracker keeps the streak; `acetate plan` reads it from the
 * status records the loop writes).
 *
 * - restartPolicy Always restarts after any exit; OnFailure only after a known non-zero exit code
 *   (an unknown one may have been 0: a job that may have succeeded is not run again, see
 *   runtime/runc/supervision.ts); Never leaves the container exited.
 * - A restart the policy wants waits for the crash-loop back-off of that exit, when one is known:
 *   the start is held until `restartAt`, and the plan asks to be made again then.
 */
import type { NormalizedSpec, RestartPolicy } from '../api/types.js';
import type { ActualContainer, ProcessInfo } from '../runtime/runtime.js';
import { formatDuration } from '../util/duration.js';

/** What is known of the crash-loop back-off of a key's last exit (CrashLoopTracker's bookkeeping). */
export interface RestartBackoff {
  /** The exit these facts are about (exitIdentity): facts about another exit are ignored. */
  exitId: string;
  /** Consecutive exits counted. */
  streak: number;
  /** When the restart is due (epoch ms). */
  restartAt: number;
  /** The back-off of this streak (shown in the message). */
  delayMs: number;
}

/** A start the plan does not take now, and why. */
export interface HeldStart {
  key: string;
  /**
   * CrashLoopBackOff: taken at `until`. RestartPolicy / ExitCodeUnknown: the policy does not run
   * the process again; only a change of the manifest does.
   */
  reason: 'CrashLoopBackOff' | 'RestartPolicy' | 'ExitCodeUnknown';
  /** In Kubernetes' words: "back-off 20s restarting failed container: exited with code 1". */
  message: string;
  /** When the start is due (epoch ms); only for CrashLoopBackOff. */
  until?: number;
}

/** Whether restartPolicy asks for a restart after an exit with exitCode (undefined: unknown). */
export function restartWanted(policy: RestartPolicy, exitCode: number | undefined): boolean {
  switch (policy) {
    case 'Always':
      return true;
    case 'OnFailure':
      return exitCode !== undefined && exitCode !== 0;
    case 'Never':
      return false;
  }
}

/**
 * Identity of one exit, so one exit is counted once however often it is seen, by this process or
 * by another one reading the status records (every part comes from the runtime's own state).
 */
export function exitIdentity(p: ProcessInfo, restartCount: number | undefined): string {
  return `${restartCount ?? ''}|${p.startedAt ?? ''}|${p.finishedAt ?? ''}|${p.exitCode ?? ''}|${p.pid ?? ''}`;
}

export function describeExit(p: ProcessInfo): string {
  return p.exitCode === undefined ? 'exited (exit code unknown)' : `exited with code ${p.exitCode}`;
}

export function backoffMessage(b: RestartBackoff, p: ProcessInfo): string {
  return `back-off ${formatDuration(b.delayMs)} restarting failed container: ${describeExit(p)}`;
}

/**
 * The restart of an exited process whose desired state is Running: a start now (with its reason),
 * or held. `backoff` is honoured only when it is about this very exit.
 */
export function decideRestart(
  want: NormalizedSpec,
  a: ActualContainer,
  facts: { now: number; backoff?: RestartBackoff } | undefined,
): { start: string } | { held: HeldStart } {
  const p = a.process;
  const policy = want.restartPolicy;
  if (!restartWanted(policy, p.exitCode)) {
    const held: HeldStart =
      p.exitCode === undefined
        ? {
            key: a.key,
            reason: 'ExitCodeUnknown',
            message: `exited with an unknown exit code (${p.unsupervised ?? 'not recorded'}); restartPolicy ${policy} does not run again a container that may have succeeded (change its manifest to run it again)`,
          }
        : { key: a.key, reason: 'RestartPolicy', message: `exited with code ${p.exitCode}; restartPolicy ${policy} does not restart it` };
    return { held };
  }
  const b = facts?.backoff;
  if (facts && b && b.exitId === exitIdentity(p, a.restartCount) && facts.now < b.restartAt) {
    return { held: { key: a.key, reason: 'CrashLoopBackOff', message: backoffMessage(b, p), until: b.restartAt } };
  }
  return { start: `process exited${p.exitCode !== undefined ? ` with code ${p.exitCode}` : ''}; restartPolicy ${policy}` };
}
