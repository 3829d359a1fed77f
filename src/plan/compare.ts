/** Field-by-field comparison of a desired spec with what was applied. Pure. */
import type { NormalizedSpec, ResourceName, Resources } from '../api/types.js';
import { canonicalJson } from '../api/hash.js';
import { formatCpu, formatMemory } from '../api/quantity.js';

/** Fields that can only change by creating the container again. */
export const REPLACE_FIELDS = ['template', 'image', 'command', 'args', 'env', 'workingDir', 'hostname', 'mounts', 'network', 'security', 'init'] as const;
/** Fields that need no runtime action: recorded only. */
export const RECORD_FIELDS = ['restartPolicy', 'terminationGracePeriodSeconds', 'resizePolicy', 'nodeName', 'probes', 'ports', 'imagePullPolicy'] as const;

const RESOURCE_FIELD: Record<ResourceName, keyof Resources> = { cpu: 'cpuMillis', memory: 'memoryBytes', pids: 'pids', disk: 'diskBytes' };
/** The kernel rounds memory limits down to a page. */
const PAGE = 4096;

export function changedFields<F extends keyof NormalizedSpec>(fields: readonly F[], a: NormalizedSpec, b: NormalizedSpec): F[] {
  return fields.filter((f) => canonicalJson(a[f]) !== canonicalJson(b[f]));
}

export function sameResource(r: ResourceName, a: number | undefined, b: number | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (r === 'memory') return Math.floor(a / PAGE) === Math.floor(b / PAGE);
  if (r === 'disk') return Math.ceil(a / PAGE) === Math.ceil(b / PAGE); // images are whole 4 KiB blocks
  return a === b;
}

export function resourceValue(res: Resources, r: ResourceName): number | undefined {
  return res[RESOURCE_FIELD[r]];
}

/** Resources whose values differ between two resource sets. */
export function changedResources(from: Resources, to: Resources): ResourceName[] {
  return (['cpu', 'memory', 'pids', 'disk'] as const).filter((r) => !sameResource(r, resourceValue(from, r), resourceValue(to, r)));
}

export function formatResource(r: ResourceName, v: number | undefined): string {
  if (v === undefined) return 'unlimited';
  if (r === 'cpu') return formatCpu(v);
  if (r === 'memory' || r === 'disk') return formatMemory(v);
  return String(v);
}

/** "memory 256Mi → 512Mi, cpu 1 → 500m" */
export function describeResourceChange(from: Resources, to: Resources, only?: ResourceName[]): string {
  return (only ?? changedResources(from, to))
    .map((r) => `${r} ${formatResource(r, resourceValue(from, r))} → ${formatResource(r, resourceValue(to, r))}`)
    .join(', ');
}
