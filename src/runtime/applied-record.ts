/**
 * The one builder of an AppliedRecord, used by the actions (apply/execute.ts) and by the runtime
 * when it creates a container or records the resources in force: the spec hash always follows
 * the spec it is written with.
 */
import type { NormalizedSpec, Resources, SourceRef } from '../api/types.js';
import { hashOf, hashOfUnchanging } from '../api/hash.js';
import type { AppliedRecord } from './runtime.js';

export interface AppliedOf {
  namespace: string;
  name: string;
  spec: NormalizedSpec;
  source: SourceRef;
}

/** The record of `of` applied, created at createdAt; with `resources`, those replace the spec's (what is in force). */
export function appliedRecord(of: AppliedOf, createdAt: string, resources?: Resources): AppliedRecord {
  const spec = resources ? { ...of.spec, resources } : of.spec;
  return { namespace: of.namespace, name: of.name, spec, specHash: hashOf(spec), source: of.source, createdAt };
}

/**
 * Whether a record's specHash is the hash of its spec (a record written by an older acetate, or
 * edited by hand, may say otherwise: plan then rewrites it). Worked out once per spec object
 * (the read cache keeps one per unchanged file) and reported with the container, so a plan
 * beside the loop does not hash 2,500 specs again (two thirds of its planning).
 */
export function specHashMatches(record: AppliedRecord): boolean {
  return hashOfUnchanging(record.spec) === record.specHash;
}
