/**
 * The status of one container, computed from what the loop knows after reconciling it: desired,
 * actual, what this reconcile did or failed to do, and the source's problems for the key.
 *
 * Conditions follow Kubernetes conventions: type, status True/False/Unknown, a CamelCase reason,
 * a human message, lastTransitionTime (which changes only when status changes) and
 * observedGeneration.
 *
 * - Ready: the process runs as desired (or is stopped as desired).
 * - Synced: the desired spec is applied; False with the reason when it is not (an error, an invalid
 *   or conflicting manifest, an action still to do).
 * - ResizePending: a resize the kernel refused for now (reason Deferred) is still to be applied.
 */
import type { Condition, ContainerStatus, DesiredContainer, NormalizedProbes, Phase, Resources } from '../api/types.js';
import { formatCpu, formatMemory } from '../api/quantity.js';
import type { ActualContainer, DeferredResize } from '../runtime/runtime.js';
import type { SourceProblem } from '../contracts/source.js';
import type { Waiting } from '../contracts/status-record.js';
import { imageStatus } from '../images/status.js';

export const CONDITION_READY = 'Ready';
export const CONDITION_SYNCED = 'Synced';
export const CONDITION_RESIZE_PENDING = 'ResizePending';
/** Present once a container's supervisor was found gone (see runtime/runc/supervision.ts). */
export const CONDITION_SUPERVISED = 'Supervised';
/** Host-template containers: the markers that hide node data made since the start are in place (walls/host-view-watch.ts). */
export const CONDITION_HOST_VIEW = 'HostViewCurrent';

/** Why a container desired Running is not being started now. */
export interface ReconcileError {
  message: string;
  /** The action that failed, if any. */
  action?: string;
  /** backoff: retried automatically; terminal: waits for the next change of the key. */
  retry: 'backoff' | 'terminal';
  /** A CamelCase reason the error carries (e.g. PortConflict, SubnetFull from the network driver). */
  reason?: string;
}

export interface StatusInput {
  key: string;
  desired?: DesiredContainer;
  actual?: ActualContainer;
  previous?: ContainerStatus;
  /** The error that ended this reconcile, if any. */
  error?: ReconcileError;
  /** Source problems concerning this key (invalid manifest, conflict). */
  problems?: SourceProblem[];
  /** The key is protected: its container is left exactly as it is. */
  protectedKey?: boolean;
  /** A start held back by restartPolicy / crash-loop backoff. */
  waiting?: Waiting;
  /** Resizes the kernel refused this time. */
  deferred?: DeferredResize[];
  /** Exit code of the last run when it is no longer visible in actual (restarted since). */
  lastExitCode?: number;
  /** Actions the plan still wants that were not carried out (besides a held-back start). */
  pendingActions?: string[];
  /** The node's name, reported in status.node. */
  node?: string;
  /** Why the running container's markers for new node data could not all be placed (host-view-watch.ts), if so. */
  hostView?: string;
  /** The startup/readiness probes' verdict on the running process (see probes/prober.ts). */
  probe?: { ready: boolean; reason: string; message: string };
  /** Now, epoch ms. */
  now: number;
}

export function formatResources(r: Resources | undefined): ContainerStatus['resources'] {
  const out: NonNullable<ContainerStatus['resources']> = {};
  if (!r) return out;
  if (r.cpuMillis !== undefined) out.cpu = formatCpu(r.cpuMillis);
  if (r.memoryBytes !== undefined) out.memory = formatMemory(r.memoryBytes);
  if (r.pids !== undefined) out.pids = r.pids;
  if (r.diskBytes !== undefined) out.disk = formatMemory(r.diskBytes);
  return out;
}

function problemMessage(p: SourceProblem): string {
  const where = `${p.origin}${p.line !== undefined ? `:${p.line}` : ''}`;
  return `${where}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/** Computes the phase of a container. */
export function computePhase(input: StatusInput): Phase {
  const { desired, actual } = input;
  const state = actual?.process.state;
  if (state === 'running') return 'Running';
  if (!desired) return actual ? (state === 'exited' && (actual.process.exitCode ?? 1) !== 0 ? 'Failed' : 'Stopped') : 'Unknown';
  if (desired.spec.state === 'Stopped') return 'Stopped';
  if (state === 'exited') {
    if (input.waiting?.reason === 'ExitCodeUnknown') return 'Unknown';
    if (input.waiting?.reason === 'RestartPolicy') return (actual?.process.exitCode ?? 1) === 0 ? 'Stopped' : 'Failed';
    return 'Pending';
  }
  if (input.error?.retry === 'terminal') return 'Failed';
  return 'Pending';
}

/** Whether the probes hold Ready back until one passed (readiness or startup; liveness alone does not). */
function gatesReady(probes: NormalizedProbes | undefined): boolean {
  return Boolean(probes?.readiness || probes?.startup);
}

function readyCondition(input: StatusInput): Omit<Condition, 'lastTransitionTime'> {
  const { desired, actual } = input;
  const state = actual?.process.state ?? 'absent';
  if (!desired) {
    return { type: CONDITION_READY, status: 'False', reason: 'NotDesired', message: 'no manifest declares this container' };
  }
  if (desired.spec.state === 'Stopped') {
    return state === 'running'
      ? { type: CONDITION_READY, status: 'False', reason: 'Stopping', message: 'desired state is Stopped but the process runs' }
      : { type: CONDITION_READY, status: 'True', reason: 'Stopped', message: 'stopped as desired' };
  }
  if (state === 'running' && input.probe && !input.probe.ready) {
    return { type: CONDITION_READY, status: 'False', reason: input.probe.reason, message: input.probe.message };
  }
  if (state === 'running' && !input.probe && gatesReady(actual?.applied.spec.probes)) {
    // No verdict yet for this process (the loop has not seen it, or is not running): as in
    // Kubernetes, a container with a readiness or startup probe is not Ready until one passed.
    // The probes are those the process was started with (what the prober follows), not a desired
    // spec whose probes are not applied yet.
    return {
      type: CONDITION_READY,
      status: 'False',
      reason: 'ProbesPending',
      message: `running with pid ${actual?.process.pid ?? '?'}; no probe has passed for this process yet`,
    };
  }
  if (state === 'running') {
    return { type: CONDITION_READY, status: 'True', reason: 'Running', message: input.probe?.message ?? `running with pid ${actual?.process.pid ?? '?'}` };
  }
  if (input.waiting) return { type: CONDITION_READY, status: 'False', reason: input.waiting.reason, message: input.waiting.message };
  if (input.error?.reason) return { type: CONDITION_READY, status: 'False', reason: input.error.reason, message: input.error.message };
  if (state === 'exited') {
    const code = actual?.process.exitCode;
    return { type: CONDITION_READY, status: 'False', reason: 'Exited', message: `exited${code !== undefined ? ` with code ${code}` : ''}` };
  }
  if (!actual) return { type: CONDITION_READY, status: 'False', reason: 'NotCreated', message: 'the container does not exist yet' };
  return { type: CONDITION_READY, status: 'False', reason: 'NotStarted', message: 'the process is not running' };
}

function syncedCondition(input: StatusInput): Omit<Condition, 'lastTransitionTime'> {
  const problems = input.problems ?? [];
  const conflict = problems.find((p) => p.kind === 'conflict');
  if (conflict) {
    return { type: CONDITION_SYNCED, status: 'False', reason: 'Conflict', message: `${problemMessage(conflict)}; the container is left as it is` };
  }
  const forbidden = problems.find((p) => p.kind === 'forbidden');
  if (forbidden) {
    // Kubernetes' word for an object its admission refuses; the message names the level and rule.
    const held = input.actual ? 'the running container is held as it is (not destroyed, not changed)' : 'the container is not created';
    return { type: CONDITION_SYNCED, status: 'False', reason: 'Forbidden', message: `${problemMessage(forbidden)}; ${held}` };
  }
  const invalid = problems.find((p) => p.kind === 'invalid' || p.kind === 'unreadable');
  if (invalid) {
    return {
      type: CONDITION_SYNCED,
      status: 'False',
      reason: invalid.kind === 'unreadable' ? 'UnreadableManifest' : 'InvalidManifest',
      message: `${problemMessage(invalid)}; the container keeps its last applied spec`,
    };
  }
  if (input.protectedKey) {
    return { type: CONDITION_SYNCED, status: 'False', reason: 'Protected', message: 'the source of this container currently fails; it is left as it is' };
  }
  if (input.error) {
    return {
      type: CONDITION_SYNCED,
      status: 'False',
      reason: input.error.reason ?? (input.error.retry === 'terminal' ? 'Failed' : 'ReconcileError'),
      message: `${input.error.action ? `${input.error.action}: ` : ''}${input.error.message}${input.error.retry === 'terminal' ? ' (waiting for a change of the manifest)' : ' (retrying with backoff)'}`,
    };
  }
  if (!input.desired) {
    const extra = input.pendingActions?.length ? `; ${input.pendingActions.join('; ')}` : '';
    return { type: CONDITION_SYNCED, status: 'False', reason: 'NotDesired', message: `no manifest declares this container${extra}` };
  }
  if (input.pendingActions && input.pendingActions.length > 0) {
    return { type: CONDITION_SYNCED, status: 'False', reason: 'Pending', message: `still to do: ${input.pendingActions.join(', ')}` };
  }
  const rev = input.desired.source.kind === 'file' ? input.desired.source.revision : undefined;
  return {
    type: CONDITION_SYNCED,
    status: 'True',
    reason: 'Converged',
    message: rev ? `the desired spec of commit ${rev.slice(0, 7)} is applied` : 'the desired spec is applied',
  };
}

function resizeCondition(input: StatusInput): Omit<Condition, 'lastTransitionTime'> {
  const deferred = input.deferred ?? [];
  if (deferred.length > 0) {
    return {
      type: CONDITION_RESIZE_PENDING,
      status: 'True',
      // Infeasible: cannot be done with the data in use (a disk shrink); Deferred: later (kernel refused, or at the next restart).
      reason: deferred.some((d) => d.infeasible) ? 'Infeasible' : 'Deferred',
      message: deferred.map((d) => `${d.resource}: ${d.reason}`).join('; '),
    };
  }
  return { type: CONDITION_RESIZE_PENDING, status: 'False', reason: 'NoResizePending', message: '' };
}

/**
 * Supervised: False while the process runs without its supervisor or ended unseen; True again
 * after a start under a new one. Only present once it was False, so that statuses of containers
 * that never lost theirs do not change.
 */
function supervisedCondition(input: StatusInput): Omit<Condition, 'lastTransitionTime'> | undefined {
  const lost = input.actual?.process.unsupervised;
  if (lost)
    return {
      type: CONDITION_SUPERVISED,
      status: 'False',
      reason: input.actual?.process.state === 'running' ? 'SupervisorLost' : 'ExitCodeUnknown',
      message: lost,
    };
  if (!findCondition(input.previous, CONDITION_SUPERVISED)) return undefined;
  return { type: CONDITION_SUPERVISED, status: 'True', reason: 'Supervised', message: 'the process runs under its supervisor' };
}

/**
 * Of a running container, from a failure on: False while node data made since the start may show
 * in it (its disk full and acetate's room on it used up), True once the watcher has no failure of
 * it (this acetate's: one restarted says True until its watcher's first pass meets the failure
 * again). Not running: no condition (nothing of it sees the node).
 */
function hostViewCondition(input: StatusInput): Omit<Condition, 'lastTransitionTime'> | undefined {
  if (input.actual?.process.state !== 'running') return undefined;
  if (input.hostView)
    return {
      type: CONDITION_HOST_VIEW,
      status: 'False',
      reason: 'MarkersNotPlaced',
      message: `node data made since the start may show in the container (tried again every 5 s): ${input.hostView}`,
    };
  if (!findCondition(input.previous, CONDITION_HOST_VIEW)) return undefined;
  return { type: CONDITION_HOST_VIEW, status: 'True', reason: 'NoFailure', message: 'no marker that hides node data is known to be missing' };
}

/**
 * Merges new conditions with the previous ones: lastTransitionTime is kept when a condition's
 * status did not change.
 */
export function mergeConditions(previous: Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>[], now: number): Condition[] {
  const nowIso = new Date(now).toISOString();
  return next.map((c) => {
    const prev = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : nowIso;
    const out: Condition = { type: c.type, status: c.status };
    if (c.reason !== undefined) out.reason = c.reason;
    if (c.message !== undefined) out.message = c.message;
    out.lastTransitionTime = lastTransitionTime;
    if (c.observedGeneration !== undefined) out.observedGeneration = c.observedGeneration;
    return out;
  });
}

export function findCondition(status: ContainerStatus | undefined, type: string): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** Computes the status of one container. Pure. */
export function computeStatus(input: StatusInput): ContainerStatus {
  const { desired, actual, previous } = input;
  const generation = desired?.source.kind === 'kube' ? desired.source.generation : undefined;
  const supervised = supervisedCondition(input);
  const hostView = hostViewCondition(input);
  const conds = [
    readyCondition(input),
    syncedCondition(input),
    resizeCondition(input),
    ...(supervised ? [supervised] : []),
    ...(hostView ? [hostView] : []),
  ].map((c) => (generation !== undefined ? { ...c, observedGeneration: generation } : c));
  const status: ContainerStatus = {};
  if (generation !== undefined) status.observedGeneration = generation;
  status.phase = computePhase(input);
  if (input.node) status.node = input.node;
  if (actual?.process.state === 'running' && actual.process.pid !== undefined) status.pid = actual.process.pid;
  status.restartCount = actual?.restartCount ?? 0;
  const exitCode = actual?.process.state === 'exited' ? actual.process.exitCode : undefined;
  const lastExitCode = exitCode ?? input.lastExitCode ?? actual?.process.exitCode ?? previous?.lastExitCode;
  if (lastExitCode !== undefined) status.lastExitCode = lastExitCode;
  if (actual?.process.startedAt) status.startedAt = actual.process.startedAt;
  if (actual?.network?.ip) status.ip = actual.network.ip;
  Object.assign(status, imageStatus(actual?.applied.spec.image));
  if (actual && actual.process.state === 'running') status.resources = formatResources(actual.limits);
  if (actual?.disk) status.disk = { usedBytes: actual.disk.usedBytes, totalBytes: actual.disk.totalBytes };
  status.conditions = mergeConditions(previous?.conditions, conds, input.now);
  return status;
}

/** True when two statuses differ in anything but lastTransitionTime bookkeeping. */
export function statusEqual(a: ContainerStatus | undefined, b: ContainerStatus | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
