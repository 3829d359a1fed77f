/**
 * The words of a kill after a failed liveness (or startup) probe (the plan decides it:
 * plan/probe-kill.ts): as the kubelet, the probe's output is an `Unhealthy` event, then a
 * `Killing` event; both are told once the kill was made (not for a process already gone, nor
 * for a kill that failed and is tried again). And the verdict as the status record publishes it,
 * read back as plan facts by another process (`acetate plan`).
 */
import type { ContainerEvent } from '../../contracts/sinks.js';
import type { UnhealthyRecord } from '../../contracts/status-record.js';
import type { KillAction } from '../../plan/actions.js';
import type { ProbeFailure } from '../../plan/probe-kill.js';
import type { ActualContainer } from '../../runtime/runtime.js';
import { isAlive } from '../../util/processes.js';

/** The events of a kill action, in order (Unhealthy, then Killing), told once it was made. */
export function killEvents(action: KillAction): ContainerEvent[] {
  return [
    { type: 'Warning', reason: 'Unhealthy', message: action.message },
    { type: 'Normal', reason: 'Killing', message: `Container failed ${action.probe} probe, will be restarted per restartPolicy` },
  ];
}

/** The log line of a kill action (warn), once it was made. */
export function killLogLine(action: KillAction): string {
  return `${action.key}: ${action.message}; killed pid ${action.pid}`;
}

/** The verdict as published, about the process running now (its pid and start time). */
export function unhealthyRecord(f: ProbeFailure | undefined, actual: ActualContainer | undefined): UnhealthyRecord | undefined {
  if (!f || actual?.process.state !== 'running' || actual.process.pid !== f.pid) return undefined;
  return { ...f, ...(actual.process.startedAt ? { startedAt: actual.process.startedAt } : {}) };
}

/**
 * The published verdicts that are facts now, as plan facts. A verdict is a fact only while the
 * prober that made it lives: its signer (`by`, the loop that wrote the record) must run, with
 * the same start time (not a reused pid), and be another process than this one (a reader never
 * probes). So `acetate plan` beside a live `acetate run` shows the kill the loop is about to
 * make, and `acetate apply` (which holds the node lock: no loop runs) never kills on a verdict
 * nobody checks any more, as a loop started afresh would not. And the verdict must still be
 * about the process that runs now (same container, pid and start time). Whether the probe is
 * still the declared one is the plan's to weigh (probeHash).
 */
export async function unhealthyFacts(
  records: { key: string; incarnation?: string; unhealthy?: UnhealthyRecord }[],
  actual: ReadonlyMap<string, ActualContainer>,
  /** The process the facts are for; the loop planning for `acetate plan` passes FOR_AN_ASKER (cli/plan-input.ts): its verdicts are facts to its asker. */
  reader: number = process.pid,
): Promise<Map<string, ProbeFailure>> {
  const out = new Map<string, ProbeFailure>();
  for (const r of records) {
    const a = actual.get(r.key);
    const u = r.unhealthy;
    if (!u?.by || !u.probeHash || !a || a.process.state !== 'running' || a.process.pid !== u.pid) continue;
    if (r.incarnation !== undefined && r.incarnation !== a.applied.createdAt) continue;
    if ((u.startedAt ?? '') !== (a.process.startedAt ?? '')) continue;
    if (u.by.pid === reader || !(await isAlive(u.by.pid, u.by.startTicks))) continue;
    out.set(r.key, { kind: u.kind, pid: u.pid, message: u.message, probeHash: u.probeHash });
  }
  return out;
}
