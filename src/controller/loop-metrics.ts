/** The loop's gauges, set when /metrics is scraped: queue, phases, manifest problems, readiness, disk use. */
import type { ContainerStatus, Phase } from '../api/types.js';
import type { Metrics } from '../observability/metrics.js';
import type { WorkQueue } from './queue.js';
import type { MergedSnapshot } from './merge-sources.js';

export interface LoopView {
  queue: WorkQueue;
  phases: ReadonlyMap<string, Phase>;
  statuses: ReadonlyMap<string, ContainerStatus>;
  snapshot: MergedSnapshot;
  ready: boolean;
}

export function collectLoopMetrics(m: Metrics, v: LoopView): void {
  m.queueDepth.set(v.queue.len());
  m.queueRetries.set(v.queue.delayedCount());
  const counts = new Map<Phase, number>();
  for (const p of v.phases.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
  m.setPhases(counts);
  const invalid = new Set<string>();
  const conflicts = new Set<string>();
  m.manifestProblems.reset();
  const perOrigin = new Map<string, number>();
  for (const p of v.snapshot.problems) {
    if (p.kind === 'conflict') for (const k of p.keys) conflicts.add(k);
    else invalid.add(p.origin);
    const id = `${p.origin}\u0000${p.kind}`;
    perOrigin.set(id, (perOrigin.get(id) ?? 0) + 1);
  }
  for (const [id, n] of perOrigin) {
    const [origin, kind] = id.split('\u0000') as [string, string];
    m.manifestProblems.set({ origin, kind }, n);
  }
  m.invalidManifests.set(invalid.size);
  m.manifestConflicts.set(conflicts.size);
  m.ready.set(v.ready ? 1 : 0);
  m.setDiskUsage(v.statuses);
}
