/**
 * plan(desired, actual, facts) → ordered actions with reasons, the starts held back, and when to
 * plan again. Pure: no I/O, no clock (now is an input). Everything `acetate plan`, `acetate apply`
 * and the loop do starts here, and the loop does exactly what it returns.
 */
import type { DesiredContainer, NormalizedSpec, ResourceName, Resources } from '../api/types.js';
import { canonicalJson, hashOfUnchanging, sameJson } from '../api/hash.js';
import { publishedOnly } from '../api/ports.js';
import type { ActualContainer, NodeNetworkFacts, ResourceGranularity, UserNamespaceFacts } from '../runtime/runtime.js';
import type { Action } from './actions.js';
import { capabilityNote, isolationSummary } from './isolation-notes.js';
import { RangePlanner, userNamespaceChange, withResolvedHostUsers } from './user-namespace.js';
import { planNetwork, planNetworkChange, type NetworkChange } from './network.js';
import { diskChangeInfeasible, diskChangeNote } from './disk.js';
import { changedFields, changedResources, describeResourceChange, RECORD_FIELDS, REPLACE_FIELDS } from './compare.js';
import { describeImageChange } from './image-change.js';
import { decideRestart, type HeldStart, type RestartBackoff } from './restart.js';
import { planKill, type ProbeFailure } from './probe-kill.js';

export interface PlanInput {
  desired: Map<string, DesiredContainer>;
  actual: Map<string, ActualContainer>;
  /** Keys whose declarations are invalid or conflicting: their containers are left as they are. */
  protectedKeys?: Set<string>;
  /** Keys left alone for a reason found before planning (an image that cannot be resolved), and why. */
  heldKeys?: Map<string, string>;
  /** Manifest files that fail: containers last applied from them are never destroyed. */
  failingOrigins?: Set<string>;
  /** The desired state is a complete view: managed containers missing from it may be destroyed. */
  complete: boolean;
  /** Why it is not complete (shown in skipped reasons). */
  incompleteReason?: string;
  /** Now (epoch ms): what the crash-loop back-off is weighed against. Required with restartBackoff. */
  now?: number;
  /** The crash-loop back-off of exited processes, per key (none known: a restart is not held). */
  restartBackoff?: ReadonlyMap<string, RestartBackoff>;
  /**
   * Liveness (or startup) probes that failed, per key, each about one process (the prober's
   * verdict): that process is killed. Required with now (the key is planned again at once).
   */
  unhealthy?: ReadonlyMap<string, ProbeFailure>;
  /** How the node rounds resource values (Runtime.granularity); none: compared exactly. */
  granularity?: ResourceGranularity;
  /** The node network asked for and the one recorded (Runtime.networkFacts): a change is planned, not silent. */
  network?: NodeNetworkFacts;
  /**
   * What an absent hostUsers means and the id pool (Runtime.userNamespaceFacts): a change of either
   * is a planned replace (user-namespace.ts). None: absent hostUsers is the node's ids.
   */
  userNamespaces?: UserNamespaceFacts;
}

export interface Skipped {
  key: string;
  reason: string;
}

/** Plan this key again at `at` (epoch ms), though nothing changes: a held start comes due. */
export interface PlanRequeue {
  key: string;
  at: number;
}

export interface Plan {
  actions: Action[];
  /** Keys that are converged (nothing to do now, nor due later). */
  unchanged: string[];
  /** Keys left alone on purpose, and why. */
  skipped: Skipped[];
  /** Starts of exited processes not taken now: crash-loop back-off (until a time) or restartPolicy. */
  held: HeldStart[];
  /** When to plan keys again on their own. */
  requeue: PlanRequeue[];
  /** The node network changes (flags): what it does, or why it is refused. */
  network?: NetworkChange;
}

/** The limits in force: read from the cgroup when running, else what was applied. */
function limitsInForce(a: ActualContainer): Resources {
  return a.process.state === 'running' ? a.limits : a.applied.spec.resources;
}

interface KeyPlan {
  actions: Action[];
  held?: HeldStart;
}

/** Only hostUsers differs in security: the change is named as the user namespace's, not as security's. */
function onlyHostUsersDiffers(had: NormalizedSpec, want: NormalizedSpec): boolean {
  const { hostUsers: a, ...x } = had.security;
  const { hostUsers: b, ...y } = want.security;
  return a !== b && canonicalJson(x) === canonicalJson(y);
}

function planOne(desired: DesiredContainer, a: ActualContainer, input: PlanInput, ranges: RangePlanner): KeyPlan {
  // hostUsers as the record keeps it (absent: the node's default, resolved), see user-namespace.ts.
  const d = withResolvedHostUsers(desired, input.userNamespaces);
  const want = d.spec;
  const had = a.applied.spec;
  const key = d.key;
  const running = a.process.state === 'running';
  // The same spec as applied (the usual case): no field can differ, only the process and limits.
  // The record's own check (reported by the runtime, else hashed here) and a walk instead of
  // hashing the desired spec too: the two hashes were two thirds of a plan at 2,500.
  const sameSpec = (a.appliedHashMatches ?? hashOfUnchanging(had) === a.applied.specHash) && sameJson(want, had);

  let replaceFields: string[] = sameSpec ? [] : changedFields(REPLACE_FIELDS, had, want);
  // Node root → a range, back, or a range that cannot stay: a replace, whatever else changed.
  const userns = replaceFields.length || want.security.hostUsers === false ? userNamespaceChange(had, want, a, ranges) : undefined;
  if (userns) {
    if (replaceFields.includes('security') && onlyHostUsersDiffers(had, want)) replaceFields = replaceFields.filter((f) => f !== 'security');
    replaceFields.push('user namespace');
  }
  if (replaceFields.length) {
    const idRange = userns?.idRange ? { idRange: userns.idRange } : {};
    const image = describeImageChange(had, want, replaceFields);
    if (image)
      return { actions: [{ kind: 'replace', key, desired: d, fields: replaceFields, discardPrivateArea: image.discard, reason: image.reason, ...idRange }] };
    const discard = replaceFields.includes('template');
    const others = replaceFields.filter((f) => f !== 'user namespace');
    const reason = discard
      ? `template ${had.template} → ${want.template}${replaceFields.length > 1 ? ` (and ${replaceFields.filter((f) => f !== 'template').join(', ')})` : ''}: the private area will be deleted`
      : others.length
        ? `${others.join(', ')} changed${others.includes('network') ? ` (network ${had.network} → ${want.network})` : ''}: cannot change in place (private area kept)${userns ? `; ${userns.note}` : ''}${capabilityNote(had, want)}`
        : userns!.note;
    return { actions: [{ kind: 'replace', key, desired: d, fields: replaceFields, discardPrivateArea: discard, reason, ...idRange }] };
  }
  const g = input.granularity;

  const actions: Action[] = [];
  let held: HeldStart | undefined;
  const inForce = limitsInForce(a);
  const wantsRunning = want.state === 'Running';
  if (running && !wantsRunning) {
    actions.push({ kind: 'stop', key, desired: d, reason: 'desired Stopped' });
  } else if (!wantsRunning && (had.state === 'Running' || a.process.state === 'exited')) {
    // The process is gone but its runtime state (runc state, mount) may be left, e.g. by a stop
    // that was interrupted: stopping again finishes it.
    actions.push({ kind: 'stop', key, desired: d, reason: 'desired Stopped; finishing the stop' });
  } else if (running) {
    // A process its probe condemned is killed and nothing else: resizing or repairing it is moot,
    // and the next plan, after its exit, starts it again (restartPolicy) with the desired spec.
    const kill = planKill(d, a, input.unhealthy?.get(key));
    if (kill) return { actions: [kill] };
    const resChanged = changedResources(inForce, want.resources, g);
    if (resChanged.length) {
      // An infeasible shrink stays Infeasible whatever the policy: restarting for it would restart for ever.
      const infeasibleDisk = resChanged.includes('disk') && diskChangeInfeasible(a, inForce.diskBytes, want.resources.diskBytes);
      const restartFor = resChanged.filter((r) => want.resizePolicy[r] === 'RestartContainer' && !(r === 'disk' && infeasibleDisk));
      const change = describeResourceChange(inForce, want.resources, resChanged);
      if (restartFor.length) {
        actions.push({
          kind: 'restart',
          key,
          desired: d,
          from: inForce,
          to: want.resources,
          reason: `${change} (resizePolicy RestartContainer for ${restartFor.join(', ')})`,
        });
      } else {
        const drift = changedResources(had.resources, want.resources, g).length === 0;
        const disk = resChanged.includes('disk') ? diskChangeNote(a, inForce.diskBytes, want.resources.diskBytes) : '';
        actions.push({
          kind: 'resize',
          key,
          desired: d,
          from: inForce,
          to: want.resources,
          reason: `${change} (in place${drift ? ', repairing drift' : ''}${disk ? `; ${disk}` : ''})`,
        });
      }
    }
    actions.push(...planNetwork(d, a));
  } else if (wantsRunning && a.process.state === 'absent') {
    // What is missing, in words: a container stopped on purpose, or one whose start never happened (or failed).
    const why = had.state === 'Stopped' ? 'stopped' : 'created, not started yet';
    actions.push({ kind: 'start', key, desired: d, reason: `desired Running, ${why}` });
  } else if (wantsRunning) {
    const facts = input.restartBackoff ? { now: input.now!, backoff: input.restartBackoff.get(key) } : undefined;
    const restart = decideRestart(want, a, facts);
    if ('start' in restart) actions.push({ kind: 'start', key, desired: d, reason: restart.start });
    else held = restart.held;
  }
  if (!actions.length) {
    // Nothing to do to the process, yet the record may be stale (policy fields, state, limits of a stopped container).
    const fields: string[] = [
      ...(sameSpec ? [] : changedFields(RECORD_FIELDS, had, want)),
      ...(had.state !== want.state ? ['state'] : []),
      ...changedResources(had.resources, want.resources, g).map((r: ResourceName) => `resources.${r}`),
    ];
    if (fields.length) {
      actions.push({ kind: 'configure', key, desired: d, fields, reason: `${fields.join(', ')} changed (no restart needed)` });
    } else if (!sameSpec && hashOfUnchanging(want) !== a.applied.specHash) {
      actions.push({ kind: 'configure', key, desired: d, fields: ['record'], reason: 'applied record is out of date' });
    }
  }
  return held ? { actions, held } : { actions };
}

export function plan(input: PlanInput): Plan {
  const { desired, actual } = input;
  if (input.restartBackoff && input.now === undefined) throw new Error('plan: restartBackoff needs now');
  if (input.unhealthy && input.now === undefined) throw new Error('plan: unhealthy needs now');
  const protectedKeys = input.protectedKeys ?? new Set<string>();
  const failing = input.failingOrigins ?? new Set<string>();
  const keys = [...new Set([...desired.keys(), ...actual.keys(), ...(input.heldKeys?.keys() ?? [])])].sort();
  const out: Plan = { actions: [], unchanged: [], skipped: [], held: [], requeue: [] };
  const netChange = planNetworkChange(input.network);
  const ranges = new RangePlanner(input.userNamespaces, actual);
  if (netChange) out.network = netChange;
  for (const key of keys) {
    const d = desired.get(key);
    const a = actual.get(key);
    if (protectedKeys.has(key)) {
      out.skipped.push({ key, reason: 'its declaration is invalid or conflicting: left as last applied' });
      continue;
    }
    const heldBefore = input.heldKeys?.get(key);
    if (heldBefore !== undefined) {
      out.skipped.push({ key, reason: heldBefore });
      continue;
    }
    if (!d && !a) continue;
    // A refused network change: a bridge container would be set up, repaired or readdressed on the
    // new network while others hold the old one. Destroys and moves to network none go ahead.
    if (netChange?.refused && d?.spec.network === 'bridge') {
      out.skipped.push({ key, reason: `node network ${netChange.change} refused while containers hold addresses on the old one: left as it is` });
      continue;
    }
    if (!d && a) {
      const src = a.applied.source;
      if (src.kind === 'file' && failing.has(src.file)) {
        out.skipped.push({ key, reason: `${src.file} fails to load: left as last applied` });
      } else if (!input.complete) {
        out.skipped.push({ key, reason: `not destroying: ${input.incompleteReason ?? 'desired state is incomplete'}` });
      } else {
        const frees = a.applied.spec.network === 'bridge' && publishedOnly(a.network?.ports ?? a.applied.spec.ports).length > 0;
        out.actions.push({
          kind: 'destroy',
          key,
          graceSeconds: a.applied.spec.terminationGracePeriodSeconds,
          reason: 'no longer declared',
          ...(frees ? { releasesPorts: true } : {}),
        });
      }
      continue;
    }
    if (d && !a) {
      const dd = withResolvedHostUsers(d, input.userNamespaces);
      const idRange = dd.spec.security.hostUsers === false ? ranges.take() : undefined;
      out.actions.push({
        kind: 'create',
        key,
        desired: dd,
        reason:
          (d.spec.state === 'Running' ? 'not created yet' : 'not created yet (created stopped)') +
          isolationSummary(dd.spec, { idRange, nodeRootLoosens: input.userNamespaces?.hostUsersDefault === false }),
        ...(idRange ? { idRange } : {}),
      });
      continue;
    }
    const { actions, held } = planOne(d!, a!, input, ranges);
    out.actions.push(...actions);
    if (held) out.held.push(held);
    if (held?.until !== undefined) out.requeue.push({ key, at: held.until });
    // A killed process is left exited: plan again at once, so restartPolicy decides its restart.
    else if (actions.some((x) => x.kind === 'kill')) out.requeue.push({ key, at: input.now! });
    else if (!actions.length) out.unchanged.push(key);
  }
  return out;
}
