/**
 * The words of a kill after a failed liveness (or startup) probe (the plan decides it:
 * plan/probe-kill.ts): as the kubelet, the probe's output is an `Unhealthy` event, then a
 * `Killing` event, both told before the process is killed. And the verdict as the status record
 * publishes it, read back as plan facts by another process (`acetate plan`).
 */
import type { ContainerEvent } from '../../contracts/sinks.js';
import type { UnhealthyRecord } from '../../contracts/status-record.js';
import type { KillAction } from '../../plan/actions.js';
import type { ProbeFailure } from '../../plan/probe-kill.js';
import type { ActualContainer } from '../../runtime/runtime.js';

/** The events of a kill action, in order, told before the kill. */
export function killEvents(action: KillAction): ContainerEvent[] {
  return [
    { type: 'Warning', reason: 'Unhealthy', message: action.message },
    { type: 'Normal', reason: 'Killing', message: `Container failed ${action.probe} probe, will be restarted per restartPolicy` },
  ];
}

/** The log line of a kill action (warn). */
export function killLogLine(action: KillAction): string {
  return `${action.key}: ${action.message}; killing pid ${action.pid}`;
}

/** The verdict as published, about the process running now (its pid and start time). */
export function unhealthyRecord(f: ProbeFailure | undefined, actual: ActualContainer | undefined): UnhealthyRecord | undefined {
  if (!f || actual?.process.state !== 'running' || actual.process.pid !== f.pid) return undefined;
  return { ...f, ...(actual.process.startedAt ? { startedAt: actual.process.startedAt } : {}) };
}

/**
 * The published verdicts still about the process that runs now (same container, pid and start
 * time, so a reused pid is never taken for the condemned one), as plan facts.
 */
export function unhealthyFacts(
  records: { key: string; incarnation?: string; unhealthy?: UnhealthyRecord }[],
  actual: ReadonlyMap<string, ActualContainer>,
): Map<string, ProbeFailure> {
  const out = new Map<string, ProbeFailure>();
  for (const r of records) {
    const a = actual.get(r.key);
    const u = r.unhealthy;
    if (!u || !a || a.process.state !== 'running' || a.process.pid !== u.pid) continue;
    if (r.incarnation !== undefined && r.incarnation !== a.applied.createdAt) continue;
    if ((u.startedAt ?? '') !== (a.process.startedAt ?? '')) continue;
    out.set(r.key, { kind: u.kind, pid: u.pid, message: u.message });
  }
  return out;
}
