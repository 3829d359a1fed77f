/**
 * Merging desired state from several places: several sources (files, Kubernetes), and within a
 * file source, several files. A key declared in two places is a conflict: it is reported, taken out
 * of the desired containers and protected, so the running container is left untouched until one of
 * the declarations goes away.
 */
import type { DesiredContainer, SourceRef } from '../api/types.js';
import { nothingYetSnapshot, type DesiredSnapshot, type SourceProblem } from '../contracts/source.js';

/** Where a desired container was declared, as a SourceProblem origin: a file path, or `kube:ns/name`. */
export function originOf(dc: Pick<DesiredContainer, 'key' | 'source'>): string {
  return originOfRef(dc.source, dc.key);
}

export function originOfRef(ref: SourceRef, key: string): string {
  return ref.kind === 'file' ? ref.file : `kube:${key}`;
}

function where(dc: DesiredContainer): string {
  return dc.source.kind === 'file' ? `${dc.source.file}:${dc.source.line}` : `kube:${dc.key}`;
}

/** One place declaring containers: a file, a Kubernetes object, a whole source. */
export interface OriginResult {
  origin: string;
  containers: DesiredContainer[];
  problems: SourceProblem[];
}

export interface MergeResult {
  containers: Map<string, DesiredContainer>;
  protectedKeys: Set<string>;
  problems: SourceProblem[];
  /** Keys declared in more than one place, with every declaration. */
  conflicts: Map<string, DesiredContainer[]>;
}

/**
 * Merges origins. Keys claimed twice become conflicts (one problem per declaring origin, the key
 * protected); the origins' own problems are kept and their keys protected.
 */
export function mergeOrigins(origins: Iterable<OriginResult>): MergeResult {
  const claims = new Map<string, DesiredContainer[]>();
  const problems: SourceProblem[] = [];
  const protectedKeys = new Set<string>();
  for (const o of origins) {
    for (const c of o.containers) {
      const list = claims.get(c.key);
      if (list) list.push(c);
      else claims.set(c.key, [c]);
    }
    for (const p of o.problems) {
      problems.push(p);
      for (const k of p.keys) protectedKeys.add(k);
    }
  }
  const containers = new Map<string, DesiredContainer>();
  const conflicts = new Map<string, DesiredContainer[]>();
  for (const [key, list] of claims) {
    if (list.length === 1) {
      containers.set(key, list[0]!);
      continue;
    }
    conflicts.set(key, list);
    protectedKeys.add(key);
    for (const dc of list) {
      const others = list.filter((o) => o !== dc).map(where);
      const problem: SourceProblem = {
        origin: originOf(dc),
        message: `container ${key} is also declared in ${others.join(', ')}; the running container is left untouched until only one declaration remains`,
        keys: [key],
        kind: 'conflict',
      };
      if (dc.source.kind === 'file') problem.line = dc.source.line;
      problems.push(problem);
    }
  }
  // A protected key is not desired: the loop must not act on it.
  for (const k of protectedKeys) containers.delete(k);
  return { containers, protectedKeys, problems, conflicts };
}

export interface NamedSnapshot {
  /** The source's name, e.g. `files:/etc/acetate`. */
  source: string;
  snapshot: DesiredSnapshot & { failingOrigins?: Set<string>; incompleteReason?: string };
}

/** The merged desired state the loop works on. */
export interface MergedSnapshot extends DesiredSnapshot {
  /** Origins that currently fail: containers last applied from them are never destroyed. */
  failingOrigins: Set<string>;
  /** Why the snapshot is not complete, when it is not. */
  incompleteReason?: string;
}

/** Origins that currently fail (invalid or unreadable), for plan's failingOrigins. */
export function failingOrigins(snapshot: DesiredSnapshot & { failingOrigins?: Set<string> }): Set<string> {
  const out = new Set<string>(snapshot.failingOrigins ?? []);
  for (const p of snapshot.problems) if (p.kind !== 'conflict') out.add(p.origin);
  return out;
}

/**
 * Merges the snapshots of several sources into one. Complete only when every source is complete.
 * A key declared by two sources is a conflict.
 */
export function mergeSnapshots(snaps: NamedSnapshot[]): MergedSnapshot {
  if (snaps.length === 0) {
    return nothingYetSnapshot('no desired-state source');
  }
  const merged = mergeOrigins(snaps.map((s) => ({ origin: s.source, containers: [...s.snapshot.containers.values()], problems: s.snapshot.problems })));
  const failing = new Set<string>();
  for (const s of snaps) {
    for (const k of s.snapshot.protectedKeys) merged.protectedKeys.add(k);
    for (const o of failingOrigins(s.snapshot)) failing.add(o);
  }
  for (const k of merged.protectedKeys) merged.containers.delete(k);
  const incomplete = snaps.filter((s) => !s.snapshot.complete);
  const out: MergedSnapshot = {
    containers: merged.containers,
    protectedKeys: merged.protectedKeys,
    problems: merged.problems,
    complete: incomplete.length === 0,
    failingOrigins: failing,
  };
  if (incomplete.length > 0) {
    out.incompleteReason = incomplete.map((s) => s.snapshot.incompleteReason ?? `${s.source} is not synced`).join('; ');
  }
  return out;
}

/** Problems concerning key: those listing it, and those of an origin that declared it. */
export function problemsForKey(snapshot: DesiredSnapshot, key: string, declaredIn?: string): SourceProblem[] {
  return snapshot.problems.filter((p) => p.keys.includes(key) || (declaredIn !== undefined && p.origin === declaredIn && p.keys.length === 0));
}
