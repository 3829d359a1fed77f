/**
 * plan(desired, actual) → ordered actions with reasons. Pure: no I/O, no clock. Everything
 * `acetate plan`, `acetate apply` and the loop do starts here.
 */
import type { DesiredContainer, NormalizedSpec, ResourceName, Resources } from '../api/types.js';
import { hashOf } from '../api/hash.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { Action } from './actions.js';
import { isolationSummary, userNamespaceNote } from './isolation-notes.js';
import { planNetwork } from './network.js';
import { diskChangeNote } from './disk.js';
import { changedFields, changedResources, describeResourceChange, RECORD_FIELDS, REPLACE_FIELDS } from './compare.js';
import { describeImageChange } from './image-change.js';

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
}

export interface Skipped {
  key: string;
  reason: string;
}

export interface Plan {
  actions: Action[];
  /** Keys that are converged. */
  unchanged: string[];
  /** Keys left alone on purpose, and why. */
  skipped: Skipped[];
}

/**
 * Whether a process that exited should run again under its restart policy. An unknown exit code
 * (its supervisor was gone when it ended) may have been 0: OnFailure does not run it again, so a
 * job that succeeded never runs twice (see runtime/runc/supervision.ts).
 */
export function restartWanted(spec: NormalizedSpec, exitCode: number | undefined): boolean {
  if (spec.restartPolicy === 'Always') return true;
  if (spec.restartPolicy === 'OnFailure') return exitCode !== undefined && exitCode !== 0;
  return false;
}

/** The limits in force: read from the cgroup when running, else what was applied. */
function limitsInForce(a: ActualContainer): Resources {
  return a.process.state === 'running' ? a.limits : a.applied.spec.resources;
}

/**
 * hashOf(spec), remembered per spec object: a controller plans the same (unchanged) desired and
 * applied specs every pass. Specs are immutable values once loaded, so this stays pure.
 */
const specHashes = new WeakMap<NormalizedSpec, string>();
function specHash(spec: NormalizedSpec): string {
  let h = specHashes.get(spec);
  if (h === undefined) specHashes.set(spec, (h = hashOf(spec)));
  return h;
}

function planOne(d: DesiredContainer, a: ActualContainer): Action[] {
  const want = d.spec;
  const had = a.applied.spec;
  const key = d.key;
  const running = a.process.state === 'running';
  // The same spec as applied (the usual case): no field can differ, only the process and limits.
  const sameSpec = specHash(want) === a.applied.specHash && specHash(had) === a.applied.specHash;

  const replaceFields = sameSpec ? [] : changedFields(REPLACE_FIELDS, had, want);
  if (replaceFields.length) {
    const image = describeImageChange(had, want, replaceFields);
    if (image) return [{ kind: 'replace', key, desired: d, fields: replaceFields, discardPrivateArea: image.discard, reason: image.reason }];
    const discard = replaceFields.includes('template');
    const reason = discard
      ? `template ${had.template} → ${want.template}${replaceFields.length > 1 ? ` (and ${replaceFields.filter((f) => f !== 'template').join(', ')})` : ''}: the private area will be deleted`
      : `${replaceFields.join(', ')} changed${replaceFields.includes('network') ? ` (network ${had.network} → ${want.network})` : ''}: cannot change in place (private area kept)${userNamespaceNote(had, want)}`;
    return [{ kind: 'replace', key, desired: d, fields: replaceFields, discardPrivateArea: discard, reason }];
  }

  const actions: Action[] = [];
  const inForce = limitsInForce(a);
  const wantsRunning = want.state === 'Running';
  if (running && !wantsRunning) {
    actions.push({ kind: 'stop', key, desired: d, reason: 'desired Stopped' });
  } else if (!wantsRunning && (had.state === 'Running' || a.process.state === 'exited')) {
    // The process is gone but its runtime state (runc state, mount) may be left, e.g. by a stop
    // that was interrupted: stopping again finishes it.
    actions.push({ kind: 'stop', key, desired: d, reason: 'desired Stopped; finishing the stop' });
  } else if (running) {
    const resChanged = changedResources(inForce, want.resources);
    if (resChanged.length) {
      const restartFor = resChanged.filter((r) => want.resizePolicy[r] === 'RestartContainer');
      const change = describeResourceChange(inForce, want.resources);
      if (restartFor.length) {
        actions.push({ kind: 'restart', key, desired: d, from: inForce, to: want.resources, reason: `${change} (resizePolicy RestartContainer for ${restartFor.join(', ')})` });
      } else {
        const drift = changedResources(had.resources, want.resources).length === 0;
        const disk = resChanged.includes('disk') ? diskChangeNote(a, inForce.diskBytes, want.resources.diskBytes) : '';
        actions.push({ kind: 'resize', key, desired: d, from: inForce, to: want.resources, reason: `${change} (in place${drift ? ', repairing drift' : ''}${disk ? `; ${disk}` : ''})` });
      }
    }
    actions.push(...planNetwork(d, a));
  } else if (wantsRunning && (a.process.state === 'absent' || restartWanted(want, a.process.exitCode))) {
    const why = a.process.state === 'exited'
      ? `process exited${a.process.exitCode !== undefined ? ` with code ${a.process.exitCode}` : ''}; restartPolicy ${want.restartPolicy}`
      : 'desired Running, not running';
    actions.push({ kind: 'start', key, desired: d, reason: why });
  }
  if (!actions.length) {
    // Nothing to do to the process, yet the record may be stale (policy fields, state, limits of a stopped container).
    const fields: string[] = [
      ...(sameSpec ? [] : changedFields(RECORD_FIELDS, had, want)),
      ...(had.state !== want.state ? ['state'] : []),
      ...changedResources(had.resources, want.resources).map((r: ResourceName) => `resources.${r}`),
    ];
    if (fields.length) {
      actions.push({ kind: 'configure', key, desired: d, fields, reason: `${fields.join(', ')} changed (no restart needed)` });
    } else if (!sameSpec && specHash(want) !== a.applied.specHash) {
      actions.push({ kind: 'configure', key, desired: d, fields: ['record'], reason: 'applied record is out of date' });
    }
  }
  return actions;
}

export function plan(input: PlanInput): Plan {
  const { desired, actual } = input;
  const protectedKeys = input.protectedKeys ?? new Set<string>();
  const failing = input.failingOrigins ?? new Set<string>();
  const keys = [...new Set([...desired.keys(), ...actual.keys(), ...(input.heldKeys?.keys() ?? [])])].sort();
  const out: Plan = { actions: [], unchanged: [], skipped: [] };
  for (const key of keys) {
    const d = desired.get(key);
    const a = actual.get(key);
    if (protectedKeys.has(key)) {
      out.skipped.push({ key, reason: 'its declaration is invalid or conflicting: left as last applied' });
      continue;
    }
    const held = input.heldKeys?.get(key);
    if (held !== undefined) {
      out.skipped.push({ key, reason: held });
      continue;
    }
    if (!d && !a) continue;
    if (!d && a) {
      const src = a.applied.source;
      if (src.kind === 'file' && failing.has(src.file)) {
        out.skipped.push({ key, reason: `${src.file} fails to load: left as last applied` });
      } else if (!input.complete) {
        out.skipped.push({ key, reason: `not destroying: ${input.incompleteReason ?? 'desired state is incomplete'}` });
      } else {
        out.actions.push({ kind: 'destroy', key, graceSeconds: a.applied.spec.terminationGracePeriodSeconds, reason: 'no longer declared' });
      }
      continue;
    }
    if (d && !a) {
      out.actions.push({ kind: 'create', key, desired: d, reason: (d.spec.state === 'Running' ? 'not on this node' : 'not on this node (created stopped)') + isolationSummary(d.spec) });
      continue;
    }
    const actions = planOne(d!, a!);
    if (actions.length) out.actions.push(...actions);
    else out.unchanged.push(key);
  }
  return out;
}
