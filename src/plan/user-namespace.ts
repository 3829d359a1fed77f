/**
 * Which node ids a container's root is, as plan decides it (pure): its own range (a user
 * namespace, hostUsers: false) or the node's ids (hostUsers: true). An absent hostUsers means the
 * node's default (--host-users, a fact of the runtime): the desired spec is resolved before it is
 * compared, so the record holds the choice made (false, or absent for the node's ids) and a change
 * of the default is a planned replace, not a switch at the next start. So is a range that left the
 * pool (--userns-pool changed) or that another container holds too (acetate before per-container
 * ranges gave every unprivileged container the same one): the container gets a range of its own.
 */
import type { DesiredContainer, NormalizedSpec } from '../api/types.js';
import type { ActualContainer, IdRangeFact, UserNamespaceFacts } from '../runtime/runtime.js';
import { lowestFreeRange, rangeInPool, rangesOverlap } from '../runtime/walls/id-pool.js';

const resolved = { true: new WeakMap<NormalizedSpec, NormalizedSpec>(), false: new WeakMap<NormalizedSpec, NormalizedSpec>() };

/**
 * The spec with hostUsers as the record keeps it: false (a user namespace) or absent (the node's
 * ids). Without facts (a runtime that has no user namespaces) absent stays the node's ids. The
 * same object for the same spec, so the plan's hash cache keeps working.
 */
export function resolveHostUsers(spec: NormalizedSpec, facts: UserNamespaceFacts | undefined): NormalizedSpec {
  const def = facts?.hostUsersDefault ?? true;
  const unprivileged = spec.security.hostUsers === false || (spec.security.hostUsers === undefined && !def);
  if (unprivileged ? spec.security.hostUsers === false : spec.security.hostUsers === undefined) return spec;
  const cache = resolved[def ? 'true' : 'false'];
  let out = cache.get(spec);
  if (!out) {
    const security = { ...spec.security };
    delete security.hostUsers;
    out = { ...spec, security: unprivileged ? { ...security, hostUsers: false } : security };
    cache.set(spec, out);
  }
  return out;
}

export function withResolvedHostUsers(d: DesiredContainer, facts: UserNamespaceFacts | undefined): DesiredContainer {
  const spec = resolveHostUsers(d.spec, facts);
  return spec === d.spec ? d : { ...d, spec };
}

/** `ids 1000065536–1000131071` */
export function idsText(r: IdRangeFact): string {
  return `ids ${r.hostID}–${r.hostID + r.size - 1}`;
}

/**
 * The containers whose ranges may overlap one another's, in groups (by start, each group a run
 * of ranges that reach into the next): two that overlap are always in one group. Why: comparing
 * every pair was 3 million comparisons, 40 ms of a `plan` over 2,500 containers, for groups
 * that are one container each unless ranges are shared.
 */
function overlapClusters(held: ActualContainer[]): ActualContainer[][] {
  const byStart = [...held].sort((a, b) => a.idRange!.hostID - b.idRange!.hostID);
  const out: ActualContainer[][] = [];
  let cluster: ActualContainer[] = [];
  let reach = -Infinity;
  for (const a of byStart) {
    if (a.idRange!.hostID >= reach) {
      if (cluster.length > 1) out.push(cluster);
      cluster = [];
    }
    cluster.push(a);
    reach = Math.max(reach, a.idRange!.hostID + a.idRange!.size);
  }
  if (cluster.length > 1) out.push(cluster);
  return out;
}

/**
 * The ranges a plan gives out, in the order of its actions: the lowest of the pool that no
 * container holds and no earlier action of this plan took (the allocator's own rule, so apply,
 * which asks for this range, gets it while it is free).
 */
export class RangePlanner {
  private readonly used: IdRangeFact[];
  /** Keys whose recorded range another container with a smaller key holds too. */
  private readonly sharing = new Set<string>();

  constructor(
    readonly facts: UserNamespaceFacts | undefined,
    actual: ReadonlyMap<string, ActualContainer>,
  ) {
    const held = [...actual.values()].filter((a) => a.idRange).sort((a, b) => (a.key < b.key ? -1 : 1));
    this.used = [...held.map((a) => a.idRange!), ...(facts?.heldElsewhere ?? [])];
    for (const cluster of overlapClusters(held)) {
      cluster.sort((a, b) => (a.key < b.key ? -1 : 1));
      cluster.forEach((a, i) => {
        if (cluster.slice(0, i).some((b) => rangesOverlap(a.idRange!, b.idRange!))) this.sharing.add(a.key);
      });
    }
  }

  /** The next free range of the pool, taken; undefined when the pool is full (the create then fails, saying so). */
  take(): IdRangeFact | undefined {
    if (!this.facts || this.facts.othersUnseen) return undefined;
    const r = lowestFreeRange(this.facts.pool, this.used);
    if (r) this.used.push(r);
    return r;
  }

  /** Why a container that keeps hostUsers: false needs another range, or undefined. */
  whyMove(a: ActualContainer): string | undefined {
    if (!this.facts || !a.idRange) return undefined;
    const p = this.facts.pool;
    if (!rangeInPool(a.idRange, p)) return `outside the pool ${p.hostID}–${p.hostID + p.size - 1}`;
    if (this.sharing.has(a.key)) return 'held by another container too';
    // The loop sees one container: a range held by two is found by `acetate plan`/`apply`.
    return undefined;
  }
}

/** A replace's words and range for the user namespace, when the mapping changes. */
export interface UserNamespaceChange {
  note: string;
  idRange?: IdRangeFact;
}

const KEEP = "the private area's files are re-owned to the new ids before the start (data kept)";

/**
 * The mapping change of a container going from `had` to `want` (both resolved): node root → its
 * own range, back, or from one range to another (`move`: why the range cannot stay).
 */
export function userNamespaceChange(had: NormalizedSpec, want: NormalizedSpec, a: ActualContainer, ranges: RangePlanner): UserNamespaceChange | undefined {
  const was = had.security.hostUsers === false;
  const is = want.security.hostUsers === false;
  const from = was ? (a.idRange ? idsText(a.idRange) : 'its range') : 'node root';
  if (was && !is) return { note: `user namespace: ${from} → node root, ${KEEP}` };
  if (!is) return undefined;
  const move = was ? ranges.whyMove(a) : 'node root';
  if (!move) return undefined;
  const to = ranges.take();
  const target = to
    ? idsText(to)
    : ranges.facts?.othersUnseen
      ? 'ids of its own range'
      : 'a range of its own (none free in the pool now: the create will fail)';
  return { note: `user namespace: ${from}${was ? ` (${move})` : ''} → ${target}, ${KEEP}`, ...(to ? { idRange: to } : {}) };
}
