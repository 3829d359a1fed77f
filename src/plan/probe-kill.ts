/**
 * The kill of a process whose liveness (or startup) probe failed: decided by the plan, from the
 * prober's verdict taken as data like the crash-loop back-off (the loop's Prober keeps it;
 * `acetate plan` reads it from the status records the loop writes). Pure.
 *
 * As the kubelet does, the process is killed as if it crashed and left exited, so that
 * restartPolicy and the crash-loop back-off decide its restart in the next plan. A verdict is
 * about one process: it is honoured only while that very pid runs and the desired state is
 * Running, so it can never kill the next run, nor a container the user stopped; and only while
 * the desired spec declares the very probe that failed (probeHash), so an edited or removed probe
 * never kills on the old one's verdict.
 */
import type { DesiredContainer, NormalizedProbe } from '../api/types.js';
import { hashOf } from '../api/hash.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { KillAction } from './actions.js';

/** A liveness (or startup) probe failed failureThreshold times for one process. */
export interface ProbeFailure {
  kind: 'liveness' | 'startup';
  /** The process the verdict is about. */
  pid: number;
  /** The probe's words, as the Unhealthy event: "Liveness probe failed 3 times: HTTP 500". */
  message: string;
  /** probeHash of the probe that failed. */
  probeHash: string;
}

/** What identifies a probe as declared (normalized: defaults filled in); none declared hashes as ''. */
export function probeHash(probe: NormalizedProbe | undefined): string {
  return probe ? hashOf(probe) : '';
}

/** The kill action for `failure`, when it is about the process running now and the probe declared now; else undefined. */
export function planKill(d: DesiredContainer, a: ActualContainer, failure: ProbeFailure | undefined): KillAction | undefined {
  if (!failure || d.spec.state !== 'Running' || a.process.state !== 'running' || a.process.pid !== failure.pid) return undefined;
  if (probeHash(d.spec.probes?.[failure.kind]) !== failure.probeHash) return undefined;
  return {
    kind: 'kill',
    key: d.key,
    desired: d,
    probe: failure.kind,
    pid: failure.pid,
    message: failure.message,
    reason: `${failure.message} (pid ${failure.pid}); restartPolicy ${d.spec.restartPolicy} decides the restart`,
  };
}
