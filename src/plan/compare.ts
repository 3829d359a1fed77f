/** Field-by-field comparison of a desired spec with what was applied. Pure. */
import type { NormalizedSpec, ResourceName, Resources } from '../api/types.js';
import type { ResourceGranularity } from '../runtime/runtime.js';
import { canonicalJson } from '../api/hash.js';
import { formatCpu, formatMemory } from '../api/quantity.js';

/** Fields that can only change by creating the container again. */
export const REPLACE_FIELDS = ['template', 'image', 'command', 'args', 'env', 'workingDir', 'hostname', 'mounts', 'network', 'security', 'init'] as const;
/** Fields that need no runtime action: recorded only. */
export const RECORD_FIELDS = ['restartPolicy', 'terminationGracePeriodSeconds', 'resizePolicy', 'nodeName', 'probes', 'ports', 'imagePullPolicy'] as const;

const RESOURCE_FIELD: Record<ResourceName, keyof Resources> = { cpu: 'cpuMillis', memory: 'memoryBytes', pids: 'pids', disk: 'diskBytes' };

export function changedFields<F extends keyof NormalizedSpec>(fields: readonly F[], a: NormalizedSpec, b: NormalizedSpec): F[] {
  return fields.filter((f) => canonicalJson(a[f]) !== canonicalJson(b[f]));
}

/** Equal as the node stores them (its granularity, a fact the runtime reports: e.g. memory in pages). */
export function sameResource(r: ResourceName, a: number | undefined, b: number | undefined, granularity: ResourceGranularity = {}): boolean {
  if (a === undefined || b === undefined) return a === b;
  const g = granularity[r];
  if (!g) return a === b;
  const round = g.rounding === 'down' ? Math.floor : Math.ceil;
  return round(a / g.step) === round(b / g.step);
}

export function resourceValue(res: Resources, r: ResourceName): number | undefined {
  return res[RESOURCE_FIELD[r]];
}

/** Resources whose values differ between two resource sets. */
export function changedResources(from: Resources, to: Resources, granularity?: ResourceGranularity): ResourceName[] {
  return (['cpu', 'memory', 'pids', 'disk'] as const).filter((r) => !sameResource(r, resourceValue(from, r), resourceValue(to, r), granularity));
}

export function formatResource(r: ResourceName, v: number | undefined): string {
  if (v === undefined) return 'unlimited';
  if (r === 'cpu') return formatCpu(v);
  if (r === 'memory' || r === 'disk') return formatMemory(v);
  return String(v);
}

/** "memory 256Mi → 512Mi, cpu 1 → 500m" */
export function describeResourceChange(from: Resources, to: Resources, only: ResourceName[]): string {
  return only.map((r) => `${r} ${formatResource(r, resourceValue(from, r))} → ${formatResource(r, resourceValue(to, r))}`).join(', ');
}
